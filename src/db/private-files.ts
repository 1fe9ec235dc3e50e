// Owner-only files for the data directory: directories 0700, files 0600, whatever the
// process umask. The data directory holds the embedded database and its master key.
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import { NodeFS } from '@electric-sql/pglite/nodefs'

export const privateDirectoryMode = 0o700
export const privateFileMode = 0o600

/** Creates `path` and missing parents as 0700 (repairPrivateEntries fixes an existing one). */
export function makePrivateDirectory(path: string): string {
  mkdirSync(path, { recursive: true, mode: privateDirectoryMode })
  return path
}

export interface RepairedEntries {
  directories: number
  files: number
}

/**
 * Makes `root` and the named entries in it (recursively) owner-only: directories 0700,
 * files 0600. Symbolic links inside are neither followed nor changed; missing entries are skipped.
 * Only the named entries are walked: a data directory pointed at a home directory must not
 * lose every execute bit in it (the 0700 root already shuts others out of the rest).
 */
export function repairPrivateEntries(root: string, names: readonly string[]): RepairedEntries {
  const repaired: RepairedEntries = { directories: 0, files: 0 }
  const fix = (path: string, stats: Stats, mode: number, kind: keyof RepairedEntries) => {
    if ((stats.mode & 0o777) === mode) return
    chmodSync(path, mode)
    repaired[kind]++
  }
  const rootStats = statSync(root) // the configured directory itself may be a link
  if (!rootStats.isDirectory()) return repaired
  fix(root, rootStats, privateDirectoryMode, 'directories')
  const pending = names.map((name) => join(root, name))
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    const stats = lstatOrUndefined(path)
    if (stats?.isDirectory()) {
      fix(path, stats, privateDirectoryMode, 'directories')
      for (const name of readdirSync(path)) pending.push(join(path, name))
    } else if (stats?.isFile()) {
      fix(path, stats, privateFileMode, 'files')
    }
  }
  return repaired
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

type NodeFsInit = NodeFS['init']
type PostgresModule = Parameters<NonNullable<Parameters<NodeFsInit>[1]['preRun']>[number]>[0]

/** The parts of Emscripten's NODEFS that set modes on the host file system. */
interface EmscriptenNodeFs {
  node_ops: {
    mknod(parent: unknown, name: string, mode: number, dev: unknown): unknown
    setattr(node: unknown, attr: { mode?: number }): void
  }
  stream_ops: { setattr(stream: unknown, attr: { mode?: number }): void }
}

const ownerOnly = (mode: number) => mode & ~0o077
const restricted = new WeakSet<object>()

/**
 * PGlite's NodeFS with owner-only modes. PGlite writes its initial data directory from a
 * tarball through Emscripten's FS.writeFile, whose default mode is 0666, and Emscripten
 * then chmods each new file to that mode through NODEFS (a chmod ignores the umask): the
 * files came out 0666 and the directories 0777 & ~umask. Here every mode NODEFS passes to
 * the host (create, chmod, fchmod) loses its group and other bits, so files are created
 * 0600 and directories 0700 from the start, also those the database creates later (new
 * relation files, WAL segments). Each PGlite instance has its own Emscripten module, so
 * this changes no other instance and nothing else in the process.
 */
export class PrivateNodeFS extends NodeFS {
  constructor(directory: string) {
    super(makePrivateDirectory(directory))
  }

  override async init(...args: Parameters<NodeFsInit>): ReturnType<NodeFsInit> {
    const { emscriptenOpts } = await super.init(...args)
    const preRun = [(mod: PostgresModule) => restrictNodeFsModes((mod as { NODEFS?: unknown }).NODEFS as EmscriptenNodeFs), ...(emscriptenOpts.preRun ?? [])]
    return { emscriptenOpts: { ...emscriptenOpts, preRun } }
  }
}

function restrictNodeFsModes(nodefs: EmscriptenNodeFs): void {
  if (restricted.has(nodefs)) return
  const { node_ops: nodeOps, stream_ops: streamOps } = nodefs
  if (typeof nodeOps?.mknod !== 'function' || typeof nodeOps.setattr !== 'function' || typeof streamOps?.setattr !== 'function') {
    // Fail rather than silently create world-readable database files after a PGlite upgrade.
    throw new Error('PGlite NODEFS has no mknod/setattr to restrict file modes with (PGlite version changed?)')
  }
  const { mknod, setattr } = nodeOps
  const streamSetattr = streamOps.setattr
  const withOwnerOnly = <A extends { mode?: number }>(attr: A): A => (attr.mode === undefined ? attr : { ...attr, mode: ownerOnly(attr.mode) })
  nodeOps.mknod = (parent, name, mode, dev) => mknod.call(nodeOps, parent, name, ownerOnly(mode), dev)
  nodeOps.setattr = (node, attr) => setattr.call(nodeOps, node, withOwnerOnly(attr))
  streamOps.setattr = (stream, attr) => streamSetattr.call(streamOps, stream, withOwnerOnly(attr))
  restricted.add(nodefs)
}
