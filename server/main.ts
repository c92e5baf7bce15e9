import { enableCompileCache } from './compile-cache.js';
import { installUint8ArrayToBase64 } from './uint8array-base64.js';

// The entry point: the compile cache first, then the server, loaded by a dynamic import so
// that its modules are compiled with the cache on (every static import would be compiled
// before this line runs). server.ts owns the process.
enableCompileCache();
installUint8ArrayToBase64();
await import('./server.js');
