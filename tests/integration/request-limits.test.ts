import { describe, expect, it } from 'vitest';
import { readEvents } from '../helpers/api.js';
import { startServer } from '../helpers/start-server.js';

/**
 * REQUEST_TIMEOUT limits how long a client may take to send its request, never how long the
 * answer lasts: an execution that streams nothing for longer still ends normally. Runs its own
 * server (start-up.sh, real Jupyter) with a one-second limit and keepalive lines off.
 */
describe('REQUEST_TIMEOUT and long answers', () => {
  it('does not cut a silent execution stream short', async () => {
    const server = await startServer({ REQUEST_TIMEOUT: '1', KEEPALIVE_INTERVAL: '0' });
    try {
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'import time\ntime.sleep(3)\nprint("still here")' }),
      });
      expect(response.status).toBe(200);
      const events = await readEvents(response);
      expect(events.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['still here\n']);
      expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    } finally {
      await server.stop();
    }
  });
});
