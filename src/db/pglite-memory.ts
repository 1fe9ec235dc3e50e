// The embedded database's page cache (PostgreSQL shared_buffers inside PGlite's WASM memory)
// when nothing sets it: the option's default (ORCHARD_PGLITE_SHARED_BUFFERS_MB) and what
// openPgliteDatabase uses without one. PGlite's own default is 128 MB, all of it in the
// server's memory; pages beyond 32 MB are read from the files, which the system's file cache keeps.
export const defaultPgliteSharedBuffersMb = 32
