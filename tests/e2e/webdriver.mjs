// A small W3C WebDriver client (Node's fetch) for driving the real app through tauri-driver,
// plus the processes the end-to-end tests need: Xvfb, tauri-driver, linli-relay, linli.
import { spawn, execFileSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'

export class Session {
  constructor(base, id) {
    this.base = base
    this.id = id
  }

  static async start(base, application) {
    const r = await call(`${base}/session`, 'POST', {
      capabilities: { alwaysMatch: { 'tauri:options': { application } } },
    })
    return new Session(base, r.sessionId)
  }

  cmd(path, method = 'GET', body) {
    return call(`${this.base}/session/${this.id}${path}`, method, body)
  }

  async find(css) {
    const r = await this.cmd('/element', 'POST', { using: 'css selector', value: css })
    return r[ELEMENT]
  }

  async findAll(css) {
    // The page may change while WebKit builds its answer ("stale element"): ask again.
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.cmd('/elements', 'POST', { using: 'css selector', value: css })
        return r.map((e) => e[ELEMENT])
      } catch (e) {
        if (attempt >= 5 || !/stale/i.test(String(e))) throw e
        await sleep(100)
      }
    }
  }

  /** Waits (at most `ms`) until `css` matches a displayed element, optionally with `text`
   *  and without `without`. */
  async waitFor(css, { text, without, ms = 20000 } = {}) {
    const deadline = Date.now() + ms
    let last = ''
    while (Date.now() < deadline) {
      try {
        for (const el of await this.findAll(css)) {
          const shown = await this.cmd(`/element/${el}/displayed`)
          if (!shown) continue
          last = await this.cmd(`/element/${el}/text`)
          if ((text === undefined || last.includes(text)) && (without === undefined || !last.includes(without))) return el
        }
      } catch {
        // the page is changing; look again
      }
      await sleep(150)
    }
    await this.screenshot(process.env.E2E_FAILURE_SHOT ?? '/tmp/linli-e2e-failure.png').catch(() => {})
    throw new Error(`timed out waiting for ${css}${text ? ` with text "${text}" (last: "${last}")` : ''}`)
  }

  /** Whether some element matching `css` is displayed now. */
  async shown(css) {
    try {
      for (const el of await this.findAll(css)) {
        if (await this.cmd(`/element/${el}/displayed`)) return true
      }
    } catch {
      // the page is changing: count it as shown, the caller looks again
      return true
    }
    return false
  }

  /** Picks an option (`css`) of an open dropdown: clicked again until the dropdown closes (a
   *  remote search that re-renders its options as they arrive can swallow a click, and the
   *  open list then covers the dialog's buttons). */
  async pick(css, opts = {}) {
    const deadline = Date.now() + (opts.ms ?? 20000)
    for (;;) {
      await this.click(css, opts)
      await sleep(300)
      if (!(await this.shown(css))) return
      if (Date.now() > deadline) throw new Error(`the dropdown of ${css} stayed open`)
    }
  }

  /** Clicks `css` once it is displayed; retried while it is re-rendered, covered or busy. */
  async click(css, opts = {}) {
    const deadline = Date.now() + (opts.ms ?? 20000)
    for (;;) {
      const el = await this.waitFor(css, opts)
      try {
        await this.cmd(`/element/${el}/click`, 'POST', {})
        return
      } catch (e) {
        if (Date.now() > deadline || !/not interactable|stale|intercepted/.test(String(e))) throw e
        await sleep(200)
      }
    }
  }

  /** Types into the input (or textarea) inside `css`, after clearing it; `enter` presses Enter. */
  async type(css, text, { enter = false } = {}) {
    await this.waitFor(css)
    const inner = await this.find(`${css} input, ${css} textarea, ${css}:is(input, textarea)`)
    // WebDriver's clear does not tell Vue: empty the field with an input event, then type.
    await this.exec("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', { bubbles: true }))", [
      { [ELEMENT]: inner },
    ])
    await this.cmd(`/element/${inner}/value`, 'POST', { text: text + (enter ? '\uE007' : '') })
  }

  async text(css) {
    return this.cmd(`/element/${await this.waitFor(css)}/text`)
  }

  exec(script, args = []) {
    return this.cmd('/execute/sync', 'POST', { script, args })
  }

  async go(hash) {
    await this.exec('location.hash = arguments[0]', [hash])
  }

  async resize(width, height) {
    await this.cmd('/window/rect', 'POST', { width, height })
    await sleep(600)
  }

  /** Saves what the page shows: after two animation frames, so that the capture is of the
   *  page as it now is, painted (a capture taken at once may show the frame before the last
   *  change: the welcome screen once came out as the empty overview it replaced). */
  async screenshot(file) {
    await this.cmd('/execute/async', 'POST', {
      script: 'const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done()))',
      args: [],
    }).catch(() => {})
    const png = await this.cmd('/screenshot')
    writeFileSync(file, Buffer.from(png, 'base64'))
  }

  async end() {
    await this.cmd('', 'DELETE').catch(() => {})
  }
}

async function call(url, method, body) {
  const res = await fetch(url, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(60000),
  })
  const json = await res.json()
  if (!res.ok || (json.value && json.value.error)) {
    throw new Error(`${method} ${url}: ${JSON.stringify(json.value ?? json).slice(0, 500)}`)
  }
  return json.value
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

/** Starts a process; its first stdout line (at most 20 s) resolves `first`. Killed by `stop`. */
export function start(cmd, args, env = {}) {
  // Its own process group, so that stopping it also stops what it started (tauri-driver
  // starts WebKitWebDriver, which starts the app).
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const lines = createInterface({ input: child.stdout })
  const first = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} printed nothing in 20 s`)), 20000)
    lines.once('line', (l) => {
      clearTimeout(timer)
      resolve(l)
    })
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code})`)))
  })
  first.catch(() => {})
  // The last lines it printed, shown when a test fails (see `failed`).
  const recent = []
  const keep = (l) => {
    recent.push(l)
    if (recent.length > 400) recent.shift()
    if (process.env.E2E_VERBOSE) process.stderr.write(l + '\n')
  }
  createInterface({ input: child.stderr }).on('line', keep)
  lines.on('line', keep)
  const stop = () => {
    handle.stopped = true
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    child.stdout.destroy()
    child.stderr.destroy()
  }
  const handle = { child, first, stop, name: cmd.split('/').pop(), recent, stopped: false }
  return handle
}

/** Prints the last lines the processes printed (the app's log among them) and rethrows: a
 *  failure far from the developer's machine comes with what the app was doing. */
export function failed(e, procs) {
  for (const p of procs) {
    if (!p.stopped && p.recent.length) process.stderr.write(`--- the last lines of ${p.name} ---\n${p.recent.join('\n')}\n`)
  }
  throw e
}

/** Waits until something listens on 127.0.0.1:port (at most 20 s). */
export async function listening(port) {
  const deadline = Date.now() + 20000
  while (Date.now() < deadline) {
    try {
      await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(1000) })
      return
    } catch {
      await sleep(200)
    }
  }
  throw new Error(`nothing listens on port ${port}`)
}

/** Runs the `linli` command line and returns its standard output. */
export function linli(bin, dir, ...args) {
  return execFileSync(bin, ['--data', dir, ...args], { encoding: 'utf8', env: { ...process.env, LINLI_LOG: 'warn' } })
}
