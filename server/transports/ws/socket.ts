import { WebSocket } from 'ws';
import { WS_MAX_FRAME_BYTES } from '../../schemas/ws.js';

/**
 * Reasons for the closes `ws` makes on its own when a frame cannot be read at all. It closes
 * with the right code (1009 for an over-long frame, detected from the frame header before the
 * payload is buffered; 1007 for a text frame that is not UTF-8; 1002 for a broken frame) but
 * with no reason, and it does so before anyone hears of the error: the reason can only be
 * added here, in the close call itself.
 */
const REASONS: Record<number, string> = {
  1002: 'Protocol error: the frame is not valid WebSocket',
  1007: 'Text frames must be UTF-8 JSON',
  1009: `Frames must not exceed ${WS_MAX_FRAME_BYTES} bytes`,
};

/** The server's sockets (`WebSocketServer`'s `WebSocket` option): closes that say why. */
export class ApiWebSocket extends WebSocket {
  override close(code?: number, reason?: string | Buffer): void {
    super.close(code, reason ?? (code === undefined ? undefined : REASONS[code]));
  }
}
