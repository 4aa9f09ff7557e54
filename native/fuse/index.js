'use strict'
/*
 * ocimount's trimmed copy of fuse-native 2.2.6's index.js
 * (https://github.com/fuse-friends/fuse-native). fuse-native is Copyright (c) Mathias Buus
 * (@mafintosh) and the fuse-native contributors, MIT License: see LICENSE in this folder.
 *
 * It drives the patched native part next to it (fuse-native.c), built on install into
 * build/Release/ocimount_fuse.node. What differs from upstream:
 *  - paths and names are byte strings (latin1: one JS char per byte), both ways;
 *  - readdir may also answer packed: (err, names: Uint8Array of NUL-ended names, stats:
 *    Uint32Array of 24 words per name), and prime(path, names, stats) caches such a listing
 *    natively before it is asked for;
 *  - getattr, fgetattr and readdir answer with ready stat arrays (21 uint32 words, layout in
 *    fuse-native.c at populate_stat; ocimount builds them in src/fuse/ops.ts statArray) that
 *    go to the native side untouched: there is no stat-object conversion here;
 *  - getxattr(path, name, cb(err, Buffer)) and listxattr(path, cb(err, names)): the native side
 *    applies the kernel's size protocol;
 *  - only the operations ocimount uses, no Nanoresource, no macOS-only extras, no private
 *    `_op_*` methods to override; unmount runs fusermount without a shell.
 *  - `dirCacheBytes` (a budget for the native answer cache: listings, stats and byte spans kept
 *    in C, which then answers LOOKUP, READDIR and READ of what it holds without JS) and
 *    `cacheDirs` (OPENDIR replies carry FOPEN_CACHE_DIR, so the kernel keeps listings; where the
 *    kernel allows, no OPENDIR or RELEASEDIR is sent at all: fuse-native.c, "Zero-message OPENDIR");
 *    `counters()` reports what the native side answered; OCIMOUNT_FUSE_COUNT counts requests.
 * Operation signatures otherwise as upstream: every callback takes a negative errno (or 0)
 * first; read answers cb(bytesRead) or cb(-errno).
 */

const fs = require('fs')
const path = require('path')
const { execFile } = require('child_process')

// Where the addon is built; `loadFuse` in src/fuse/mount.ts checks for it before loading.
const ADDON = path.join(__dirname, 'build', 'Release', 'ocimount_fuse.node')
const binding = require(ADDON)

const DEFAULT_TIMEOUT = 15 * 1000
const EIO = -5
const ETIMEDOUT = -110

/*
 * OCIMOUNT_FUSE_COUNT=FILE: count the requests that reach JS per operation and the time from
 * the handler's call to its answer; each SIGUSR2 appends one JSON line (these counts, and the
 * answer cache's counters since the previous line) to FILE and starts counting again. For
 * benchmarks (bench/page-cache.ts --count), never on by default.
 */
const COUNT_FILE = process.env.OCIMOUNT_FUSE_COUNT || ''
const counts = {}
let lastNative = null
const countedFuses = new Set()
function countedHandler (name, handler) {
  return function (nativeHandler, opCode, ...args) {
    const c = counts[name] || (counts[name] = { n: 0, ms: 0 })
    c.n++
    // Synchronous time in the handler (an async read's wait on the thread pool is not in it).
    const t0 = process.hrtime.bigint()
    const r = handler(nativeHandler, opCode, ...args)
    c.ms += Number(process.hrtime.bigint() - t0) / 1e6
    return r
  }
}
if (COUNT_FILE) {
  process.on('SIGUSR2', () => {
    const native = {}
    for (const f of countedFuses) {
      const now = f.counters()
      for (const k of Object.keys(now)) native[k] = (native[k] || 0) + now[k] - (lastNative && k in lastNative && !/^cached/.test(k) ? lastNative[k] : 0)
      lastNative = now
    }
    const js = {}
    for (const k of Object.keys(counts)) js[k] = { n: counts[k].n, ms: Math.round(counts[k].ms * 10) / 10 }
    for (const k of Object.keys(counts)) delete counts[k]
    fs.appendFileSync(COUNT_FILE, JSON.stringify({ js, native }) + '\n')
  })
}

const offset = (low, high) => low + high * 4294967296
/** A callback's first argument as the int32 result the native side wants. */
const result = (err) => (typeof err === 'number' ? err | 0 : err ? EIO : 0)

/*
 * Per operation: how the native arguments become the JS call, and how its answer goes back.
 * `reply(res, ...values)` signals the native side; values for read/write/setxattr include the
 * ArrayBuffer over libfuse's memory, which the native side then detaches.
 */
const OPERATIONS = {
  init: (o, args, reply) => (o.init ? o.init((err) => reply(err)) : reply(0)),
  statfs: (o, [p], reply) => o.statfs(p, (err, st) => reply(err, statfsArray(st))),
  getattr: (o, [p], reply) => o.getattr(p, (err, st) => reply(err, st)),
  fgetattr: (o, [p, fd], reply) => o.fgetattr(p, fd, (err, st) => reply(err, st)),
  access: (o, [p, mode], reply) => o.access(p, mode, (err) => reply(err)),
  readlink: (o, [p], reply) => o.readlink(p, (err, target) => reply(err, target)),
  readdir: (o, [p], reply) => o.readdir(p, (err, names, stats) => reply(err, names, stats || [])),
  open: (o, [p, flags], reply) => o.open(p, flags, (err, fd) => reply(err, fd || 0)),
  release: (o, [p, fd], reply) => o.release(p, fd, (err) => reply(err)),
  read: (o, [p, fd, buf, len, lo, hi], reply) => o.read(p, fd, buf, len, offset(lo, hi), (res) => reply(res, 0, buf.buffer)),
  getxattr: (o, [p, name], reply) => o.getxattr(p, name, (err, value) => reply(err, value)),
  listxattr: (o, [p], reply) => o.listxattr(p, (err, names) => reply(err, names || [])),
  flush: (o, [p, fd], reply) => o.flush(p, fd, (err) => reply(err)),
  fsync: (o, [p, datasync, fd], reply) => o.fsync(p, datasync, fd, (err) => reply(err)),
  // Writes: ocimount refuses them all (EROFS); kept so that stays true if `ro` were ever lost.
  write: (o, [p, fd, buf, len, lo, hi], reply) => o.write(p, fd, buf, len, offset(lo, hi), (res) => reply(res, 0, buf.buffer)),
  create: (o, [p, mode], reply) => o.create(p, mode, (err, fd) => reply(err, fd || 0)),
  truncate: (o, [p, lo, hi], reply) => o.truncate(p, offset(lo, hi), (err) => reply(err)),
  ftruncate: (o, [p, fd, lo, hi], reply) => o.ftruncate(p, fd, offset(lo, hi), (err) => reply(err)),
  utimens: (o, [p, alo, ahi, mlo, mhi], reply) => o.utimens(p, offset(alo, ahi), offset(mlo, mhi), (err) => reply(err)),
  chown: (o, [p, uid, gid], reply) => o.chown(p, uid, gid, (err) => reply(err)),
  chmod: (o, [p, mode], reply) => o.chmod(p, mode, (err) => reply(err)),
  mknod: (o, [p, mode, dev], reply) => o.mknod(p, mode, dev, (err) => reply(err)),
  setxattr: (o, [p, name, value, position, flags], reply) => o.setxattr(p, name, value, position, flags, (err) => reply(err, value.buffer)),
  removexattr: (o, [p, name], reply) => o.removexattr(p, name, (err) => reply(err)),
  unlink: (o, [p], reply) => o.unlink(p, (err) => reply(err)),
  rename: (o, [src, dest], reply) => o.rename(src, dest, (err) => reply(err)),
  link: (o, [src, dest], reply) => o.link(src, dest, (err) => reply(err)),
  symlink: (o, [src, dest], reply) => o.symlink(src, dest, (err) => reply(err)),
  mkdir: (o, [p, mode], reply) => o.mkdir(p, mode, (err) => reply(err)),
  rmdir: (o, [p], reply) => o.rmdir(p, (err) => reply(err))
}

/** What a timed-out operation answers: the buffer to detach goes back too. */
function timedOut (name, args) {
  if (name === 'read' || name === 'write') return [ETIMEDOUT, 0, args[2].buffer]
  if (name === 'setxattr') return [ETIMEDOUT, args[2].buffer]
  return [ETIMEDOUT]
}

class Fuse {
  /**
   * @param {string} mnt mountpoint
   * @param {object} ops operation handlers (see OPERATIONS for their signatures)
   * @param {object} opts libfuse options as upstream names them, plus `timeout` (ms per
   *   operation, `false` for none, or an object with `default` and per-operation values)
   */
  constructor (mnt, ops, opts = {}) {
    this.opts = opts
    this.mnt = path.resolve(mnt)
    this.ops = ops
    this.timeout = opts.timeout === false ? 0 : (opts.timeout || DEFAULT_TIMEOUT)
    this._thread = null
    this._threads = new Set()
    this._openCallback = null
    this._mounted = false
    this._unmounting = null
    this._handlers = this._makeHandlerArray()
    if (COUNT_FILE) countedFuses.add(this)
  }

  _implementedArray () {
    const implemented = new Uint32Array(35)
    implemented[binding.op_init] = 1
    implemented[binding.op_error] = 1
    for (const name of Object.keys(OPERATIONS)) {
      if (this.ops[name]) implemented[binding[`op_${name}`]] = 1
    }
    return implemented
  }

  /** The -o string. Numeric zeros are dropped as upstream does (pass '0' for a real zero). */
  _fuseOptions () {
    const o = this.opts
    const options = []
    if (o.debug) options.push('debug')
    if (o.allowOther) options.push('allow_other')
    if (o.allowRoot) options.push('allow_root')
    if (o.autoUnmount) options.push('auto_unmount')
    if (o.defaultPermissions) options.push('default_permissions')
    if (o.blkdev) options.push('blkdev')
    if (o.blksize) options.push('blksize=' + o.blksize)
    if (o.maxRead) options.push('max_read=' + o.maxRead)
    if (o.fd) options.push('fd=' + o.fd)
    if (o.fsname) options.push('fsname=' + o.fsname)
    if (o.subtype) options.push('subtype=' + o.subtype)
    if (o.kernelCache) options.push('kernel_cache')
    if (o.autoCache) options.push('auto_cache')
    if (o.umask) options.push('umask=' + o.umask)
    if (o.uid) options.push('uid=' + o.uid)
    if (o.gid) options.push('gid=' + o.gid)
    if (o.entryTimeout) options.push('entry_timeout=' + o.entryTimeout)
    if (o.attrTimeout) options.push('attr_timeout=' + o.attrTimeout)
    if (o.acAttrTimeout) options.push('ac_attr_timeout=' + o.acAttrTimeout)
    if (o.noforget) options.push('noforget')
    if (o.remember) options.push('remember=' + o.remember)
    if (o.modules) options.push('modules=' + o.modules)
    return options.length ? '-o' + options.join(',') : ''
  }

  _timeoutFor (name) {
    let to = this.timeout
    if (typeof to === 'object' && to) {
      const fallback = to.default || DEFAULT_TIMEOUT
      to = to[name]
      if (!to && to !== false) to = fallback
    }
    return to || 0
  }

  _makeHandlerArray () {
    const handlers = []
    for (const [name, call] of Object.entries(OPERATIONS)) {
      const nativeSignal = binding[`fuse_native_signal_${name}`]
      handlers[binding[`op_${name}`]] = this._makeHandler(name, call, nativeSignal)
    }
    return handlers
  }

  _makeHandler (name, call, nativeSignal) {
    const self = this
    const to = this._timeoutFor(name)
    if (COUNT_FILE) return countedHandler(name, this._makeHandlerPlain(name, call, nativeSignal, to))
    return this._makeHandlerPlain(name, call, nativeSignal, to)
  }

  _makeHandlerPlain (name, call, nativeSignal, to) {
    const self = this
    // Called by the native side on the JS thread: (thread locals, opcode, ...operation args).
    return function (nativeHandler, opCode, ...args) {
      let answered = false
      let timer = null
      const reply = (err, ...values) => {
        if (answered) return
        answered = true
        if (timer) clearTimeout(timer)
        process.nextTick(nativeSignal, nativeHandler, result(err), ...values)
      }
      if (name === 'init') self._onInit()
      if (to) timer = setTimeout(() => reply(...timedOut(name, args)), to)
      if (name !== 'init' && !self.ops[name]) return reply(-38) // ENOSYS; not registered, so not reached
      call(self.ops, args, reply)
    }
  }

  _onInit () {
    this._mounted = true
    if (this._openCallback) {
      process.nextTick(this._openCallback, null)
      this._openCallback = null
    }
  }

  /** Mounts; `cb(null)` once the kernel has initialised the connection (libfuse's init). */
  mount (cb) {
    if (this._thread) return process.nextTick(cb, new Error('Already mounted'))
    fs.stat(this.mnt, (err, stat) => {
      if (err) return cb(err.errno === -2 ? new Error('Mountpoint does not exist') : err)
      if (!stat.isDirectory()) return cb(new Error('Mountpoint is not a directory'))
      fs.stat(path.join(this.mnt, '..'), (_, parent) => {
        if (parent && parent.dev !== stat.dev) return cb(new Error('Mountpoint in use'))
        this._thread = Buffer.alloc(binding.sizeof_fuse_thread_t)
        this._openCallback = cb
        const malloc = (size) => {
          const buf = Buffer.alloc(size)
          this._threads.add(buf)
          return buf
        }
        try {
          binding.fuse_native_mount(this.mnt, this._fuseOptions(), this._thread, this, malloc, this._handlers, this._implementedArray(), Number(this.opts.dirCacheBytes) || 0, !!this.opts.cacheDirs)
        } catch (err) {
          this._openCallback = null
          return cb(err)
        }
      })
    })
  }

  /**
   * Lets the native side read byte spans of the open file `fd` itself (listings then carry
   * them, see ops.ts statArray): `stamp` is a BigInt64Array [dev, ino, size, mtime s, mtime ns,
   * ctime s, ctime ns, nlink] of the file as it was indexed. The native side keeps its own
   * duplicate of the descriptor, checks every read against the stamp, and refuses a file that
   * already differs. Returns the id for word 23 of a stat array, or 0 (not served natively).
   */
  spanFile (fd, stamp) {
    if (!this._thread || this._unmounting) return 0
    return binding.fuse_native_span_file(this._thread, fd, stamp)
  }

  /**
   * Puts the listing of directory `path` (a byte string, as the kernel names it) into the answer
   * cache before it is asked for, in readdir's packed form: `names` a Uint8Array of NUL-ended
   * names, `stats` a Uint32Array of 24 words per name. Returns whether it was taken.
   */
  prime (path, names, stats) {
    if (!this._thread || this._unmounting) return false
    return binding.fuse_native_prime(this._thread, path, names, stats)
  }

  /**
   * The answer cache's counters (see fuse-native.c): requests answered on libfuse's thread
   * without JS, and what the cache holds.
   */
  counters () {
    const c = this._thread ? binding.fuse_native_counters(this._thread) : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    return {
      getattr: c[0], readdir: c[1], read: c[2], readBytes: c[3], readFallbacks: c[4], cachedBytes: c[5], cachedListings: c[6],
      // Zero-message OPENDIR (fuse-native.c): OPENDIRs the kernel sent, handles made for READDIRs, handles reused.
      kernelOpendirs: c[7], dirHandlesMade: c[8], dirHandlesReused: c[9]
    }
  }

  /** Unmounts lazily (fusermount -uz), then lets the native thread go. Once only. */
  unmount (cb) {
    if (!this._unmounting) {
      this._unmounting = new Promise((resolve) => {
        Fuse.unmount(this.mnt, (err) => {
          if (err) {
            err.unmountFailure = true
            return resolve(err)
          }
          try {
            if (this._thread) binding.fuse_native_unmount(this.mnt, this._thread)
          } catch (e) {
            return resolve(e)
          }
          resolve(null)
        })
      })
    }
    this._unmounting.then((err) => cb(err))
  }

  /** `fusermount -uz MNT` (fuse's or fuse3's helper), without a shell. */
  /**
   * For a long-running server on glibc: large blocks it frees go back to the system (a fixed
   * mmap threshold, see fuse_native_malloc_returnable), and `trimMemory()` returns what is free
   * in malloc's heap now (after a garbage collection). No-ops elsewhere.
   */
  static returnFreedMemory () {
    binding.fuse_native_malloc_returnable()
  }

  static trimMemory () {
    binding.fuse_native_malloc_trim()
  }

  static unmount (mnt, cb) {
    execFile('fusermount', ['-uz', mnt], (err) => {
      if (err && err.code === 'ENOENT') return execFile('fusermount3', ['-uz', mnt], (err3) => cb(err3 || null))
      cb(err || null)
    })
  }
}

module.exports = Fuse

function statfsArray (statfs) {
  const ints = new Uint32Array(11)
  ints[0] = (statfs && statfs.bsize) || 0
  ints[1] = (statfs && statfs.frsize) || 0
  ints[2] = (statfs && statfs.blocks) || 0
  ints[3] = (statfs && statfs.bfree) || 0
  ints[4] = (statfs && statfs.bavail) || 0
  ints[5] = (statfs && statfs.files) || 0
  ints[6] = (statfs && statfs.ffree) || 0
  ints[7] = (statfs && statfs.favail) || 0
  ints[8] = (statfs && statfs.fsid) || 0
  ints[9] = (statfs && statfs.flag) || 0
  ints[10] = (statfs && statfs.namemax) || 0
  return ints
}
