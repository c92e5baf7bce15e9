import { enableCompileCache } from './compile-cache.js';

// The entry point: the compile cache first, then the server, loaded by a dynamic import so
// that its modules are compiled with the cache on (every static import would be compiled
// before this line runs). server.ts owns the process.
enableCompileCache();
await import('./server.js');
