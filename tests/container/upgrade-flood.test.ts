import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer, type Container } from '../helpers/docker.js';

/**
 * Kernel code reaches the API on 127.0.0.1:49999 without a token. Upgrade requests it sends
 * are refused, and each refused one closes its connection: 1,100 of them leave nothing in
 * CLOSE-WAIT and do not use up MAX_CONNECTIONS, so the API still serves its caller.
 */
describe('an upgrade flood from kernel code (container)', () => {
  let container: Container;

  beforeAll(async () => {
    container = await startContainer();
  });
  afterAll(async () => {
    await container?.remove();
  });

  it('leaves no socket in CLOSE-WAIT, and the API serves on', async () => {
    const out = await container.run(
      [
        'import collections, socket, time, json',
        'from concurrent.futures import ThreadPoolExecutor',
        'paths = ["/health", "/execute", "/ws"]',
        'kept = []',
        'def one(i):',
        '    s = socket.create_connection(("127.0.0.1", 49999), timeout=5)',
        '    kept.append(s)',
        '    s.sendall((f"GET {paths[i % 3]} HTTP/1.1\\r\\nHost: 127.0.0.1:49999\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n"',
        '               "Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nOrigin: http://evil.example\\r\\n\\r\\n").encode())',
        '    try:',
        '        head = s.recv(64)',
        '    except OSError:',
        '        head = b""',
        '    status = head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else "none"',
        '    try:',
        '        s.shutdown(socket.SHUT_WR)',
        '    except OSError:',
        '        pass',
        '    return status',
        'started = time.time()',
        'with ThreadPoolExecutor(32) as pool:',
        '    statuses = collections.Counter(pool.map(one, range(1100)))',
        'elapsed = time.time() - started',
        'time.sleep(2)',
        'def close_wait():',
        '    count = 0',
        '    for name in ("/proc/net/tcp", "/proc/net/tcp6"):',
        '        for line in open(name).readlines()[1:]:',
        '            fields = line.split()',
        '            if int(fields[1].rsplit(":", 1)[1], 16) == 49999 and fields[3] == "08":',
        '                count += 1',
        '    return count',
        'print(json.dumps({"statuses": statuses, "close_wait": close_wait(), "seconds": round(elapsed, 2)}))',
        'for s in kept:',
        '    s.close()',
      ].join('\n'),
    );
    const result = JSON.parse(out) as { statuses: Record<string, number>; close_wait: number; seconds: number };
    console.log(`upgrade flood from kernel code: ${JSON.stringify(result)}`);
    expect(result.statuses).toEqual({ '403': 1100 });
    expect(result.close_wait).toBe(0);
    expect(await container.run('print(6 * 7)')).toBe('42\n');
  });
});
