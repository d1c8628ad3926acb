// End-to-end tests of the real app: the debug binary with the bundled UI, under Xvfb, driven
// through WebDriver (tauri-driver + WebKitWebDriver), with a real linli-relay on 127.0.0.1
// and a second device made with the `linli` command line. Screenshots of the main screens
// go to docs/screenshots/ (desktop and tablet sizes).
//
// Run by scripts/test (after the binaries are built):
//   node --test tests/e2e/
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Session, failed, freePort, linli, listening, sleep, start } from './webdriver.mjs'

const root = resolve(import.meta.dirname, '..', '..')
const target = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache', 'linli', 'target')
const bin = (name) => join(target, 'debug', name)
const APP = bin('linli-app')
const shots = join(root, 'docs', 'screenshots')
const driverBin = process.env.TAURI_DRIVER ?? 'tauri-driver'
const tmp = mkdtempSync(join(tmpdir(), 'linli-e2e-'))
const display = `:${90 + Math.floor(Math.random() * 9)}`
const procs = []
// Every store is encrypted: the apps started below (but the first one, whose person chooses it
// on screen) and the command line unlock theirs with this passphrase.
const PASS = 'e2e 口令 passphrase'
process.env.LINLI_PASSPHRASE = PASS

before(async () => {
  mkdirSync(shots, { recursive: true })
  const x = start('Xvfb', [display, '-screen', '0', '1400x1400x24', '-nolisten', 'tcp'])
  procs.push(x)
  await sleep(800)
})

after(() => {
  for (const p of procs) p.stop()
  rmSync(tmp, { recursive: true, force: true })
})

/** tauri-driver for a device whose store is `data`; the app it launches inherits `env`. */
async function driver(data, env = {}) {
  const port = await freePort()
  const native = await freePort()
  const d = start(driverBin, ['--port', String(port), '--native-port', String(native)], {
    DISPLAY: display,
    LINLI_DATA: data,
    LINLI_P2P_BIND: '127.0.0.1:0',
    // Kept, and printed if the test fails.
    LINLI_LOG: process.env.E2E_APP_LOG ?? 'warn,linli_api=debug,linli_sync=debug',
    ...env,
  })
  procs.push(d)
  await listening(port)
  const s = await Session.start(`http://127.0.0.1:${port}`, APP)
  await s.resize(1280, 800)
  return { s, stop: async () => { await s.end(); d.stop(); await sleep(300) } }
}

test('a community from its first start: household, visit, request loop, and a change from a second device through the relay', async () => {
  const relayDir = join(tmp, 'relay')
  const relay = start(bin('linli-relay'), ['--data', relayDir, '--listen', '127.0.0.1:0', '--reserve-mb', '16'], { LINLI_LOG: 'warn' })
  procs.push(relay)
  const relayUrl = (await relay.first).trim().split(' ').pop()
  assert.match(relayUrl, /^http:\/\/127\.0\.0\.1:\d+$/)

  const a = join(tmp, 'a')
  const { s, stop } = await driver(a, { LINLI_PASSPHRASE: '' })
  try {
    // First start: the person chooses the passphrase that protects this device's data.
    await s.waitFor('[data-test=unlock]')
    await s.type('[data-test=unlock-person]', '王芳')
    await s.type('[data-test=unlock-passphrase]', 'too short')
    await s.type('[data-test=unlock-again]', 'too short')
    await s.click('[data-test=unlock-submit]')
    await s.waitFor('[data-test=unlock-error]', { text: '至少' })
    await s.type('[data-test=unlock-passphrase]', PASS)
    await s.type('[data-test=unlock-again]', PASS)
    await s.screenshot(join(shots, 'unlock.png'))
    await s.click('[data-test=unlock-submit]')
    // Then: create the community.
    await s.waitFor('[data-test=mode-create]')
    await s.screenshot(join(shots, 'welcome.png'))
    // A new device starts on the welcome screen, with no error (no screen behind it asked for
    // a community that does not exist yet).
    assert.equal(await s.exec("return document.querySelectorAll('.el-message--error').length"), 0)
    await s.click('[data-test=mode-create]')
    await s.type('[data-test=community-name]', '幸福社区')
    await s.type('[data-test=community-street]', '和平街道')
    await s.type('[data-test=user-name]', '王芳')
    await s.click('[data-test=start]')
    await s.waitFor('[data-test=card-households]')
    assert.match(await s.exec("return document.querySelector('[data-test=role]').textContent"), /社区工作人员 · 王芳/)

    // The street office's relay.
    await s.click('[data-test=nav-settings]')
    await s.type('[data-test=relay-url]', relayUrl)
    await s.click('[data-test=relay-save]')

    // Add a household.
    await s.click('[data-test=nav-roster]')
    await s.click('[data-test=add-household]')
    await s.type('[data-test=add-compound]', '幸福里小区')
    await s.type('[data-test=add-grid]', 'G01')
    await s.type('[data-test=add-building]', '3')
    await s.type('[data-test=add-unit]', '2')
    await s.type('[data-test=add-room]', '501')
    await s.type('[data-test=add-head]', '张秀英')
    await s.type('[data-test=add-birth]', '1949-12-31', { enter: true })
    await s.type('[data-test=add-id]', '11010519491231002X')
    await s.type('[data-test=add-phone]', '13812345678')
    await s.click('[data-test=add-save]')
    await s.waitFor('[data-test=household-address]', { text: '幸福里小区3栋2单元501室' })
    const household = (await s.exec('return location.hash')).split('/').pop()
    assert.equal(await s.text('[data-test=phone]'), '138****5678')
    assert.equal(await s.text('[data-test=id-number]'), '1101**********002X')
    await s.click('[data-test=reveal-phone]')
    // Why: picked from the common reasons, written to the audit log with the reveal.
    await s.click('[data-test=reveal-reason-0]')
    await s.click('[data-test=reveal-confirm]')
    await s.waitFor('[data-test=phone]', { text: '13812345678' })

    // Edit a member's details; add a member (the ID number's check digit is validated).
    await s.click('[data-test=edit-info]')
    await s.type('[data-test=edit-value]', '张秀瑛')
    await s.click('[data-test=edit-save]')
    await s.waitFor('[data-test=member]', { text: '张秀瑛' })
    await s.click('[data-test=add-member]')
    await s.type('[data-test=member-name]', '王小明')
    await s.click('[data-test=member-male]')
    await s.type('[data-test=member-birth]', '2015-06-01', { enter: true })
    await s.type('[data-test=member-id]', '110105201506010010')
    await s.click('[data-test=member-save]')
    await s.waitFor('.el-message', { text: 'members[1].id_number' })
    // Read: close it (every copy), so that it stays out of the later screenshots.
    await s.exec("document.querySelectorAll('.el-message--error .el-message__closeBtn').forEach((b) => b.click())")
    await s.type('[data-test=member-id]', '110105201506010016')
    await s.click('[data-test=member-save]')
    await s.waitFor('[data-test=member]', { text: '王小明' })

    // Record a visit.
    await s.click('[data-test=record-visit]')
    await s.waitFor('[data-test=visit-household]', { text: '幸福里小区3栋2单元501室' })
    await s.click('[data-test=outcome-done]')
    await s.type('[data-test=visit-notes]', '老人身体不错，家中无隐患')
    await s.click('[data-test=visit-save]')
    await s.waitFor('[data-test=visit-all-done]')
    await s.go(`#/household/${household}`)
    await s.waitFor('[data-test=visit]', { text: '完成 · 入户 · 王芳' })
    await s.waitFor('[data-test=visit-notes-shown]', { text: '老人身体不错，家中无隐患' })

    // A request through its whole loop.
    await s.click('[data-test=new-request]')
    await s.type('[data-test=request-title]', '楼道灯坏了')
    await s.click('[data-test=request-save]')
    await s.waitFor('[data-test=request-state]', { text: '上报' })
    for (const [to, label] of [['accepted', '受理'], ['dispatched', '派遣'], ['in_progress', '处置中'], ['done', '办结待核查'], ['verified', '已核查'], ['closed', '结案']]) {
      await s.click(`[data-test=to-${to}]`)
      await s.waitFor('[data-test=request-state]', { text: label })
    }
    // Closed: its deadline is judged when it was closed, not counted down any more.
    await s.waitFor('[data-test=request-deadline]', { text: '按期办结' })
    await s.click('[data-test=rate]')
    await s.waitFor('[data-test=satisfaction]', { text: '满意' })
    await s.screenshot(join(shots, 'request.png'))

    // Everything reaches the relay.
    await s.click('[data-test=sync-now]')
    await s.waitFor('[data-test=sync-status]', { text: '已连接，实时同步', without: '待同步', ms: 30000 })

    // A second device joins, changes the phone and syncs; the app, connected, shows it
    // without being asked to sync.
    const b = join(tmp, 'b')
    const code = linli(bin('linli'), a, 'invite', '--role', 'staff').trim().split('\n').pop()
    linli(bin('linli'), b, 'join', code)
    linli(bin('linli'), b, 'sync')
    const [hit] = JSON.parse(linli(bin('linli'), b, '--json', 'search', '张秀瑛'))
    linli(bin('linli'), b, '--user', '李四', 'edit', hit.id, 'phone', '13900001111')
    linli(bin('linli'), b, 'sync')
    await s.go(`#/household/${household}`)
    await s.waitFor('[data-test=phone]', { text: '139****1111', ms: 10000 })
    await s.screenshot(join(shots, 'household.png'))

    // Directly, without the relay: the app syncs with the second device serving over iroh
    // (loopback), then serves and the second device syncs with it.
    linli(bin('linli'), b, '--user', '李四', 'edit', hit.id, 'phone', '13700002222')
    const serve = start(bin('linli'), ['--data', b, 'p2p', 'serve', '--bind', '127.0.0.1:0'], { LINLI_LOG: 'warn' })
    procs.push(serve)
    const ticketB = (await serve.first).trim()
    await s.click('[data-test=nav-settings]')
    await s.type('[data-test=peer-ticket-input]', ticketB)
    await s.click('[data-test=sync-peer]')
    // The other device is named by its role in the screen's language.
    await s.waitFor('.el-message', { text: '已与 社区工作人员 同步', ms: 30000 })
    await s.go(`#/household/${household}`)
    await s.waitFor('[data-test=phone]', { text: '137****2222', ms: 30000 })
    serve.stop()
    await s.click('[data-test=nav-settings]')
    // The app remembers the device it synced with; its background loop tries it again.
    await s.waitFor('[data-test=known-peer]', { text: '社区工作人员' })
    await s.click('[data-test=serve-peers]')
    await s.waitFor('[data-test=peer-ticket]')
    const ticketA = await s.exec("const e = document.querySelector('[data-test=peer-ticket]'); return e.value ?? e.querySelector('textarea').value")
    assert.match(ticketA, /^LINLIP1/)
    await s.screenshot(join(shots, 'settings.png'))
    await s.go(`#/household/${household}`)
    await s.click('[data-test=edit-phone]')
    await s.type('.el-message-box', '13600003333')
    await s.click('.el-message-box__btns .el-button--primary')
    await s.waitFor('[data-test=phone]', { text: '136****3333' })
    const out = JSON.parse(linli(bin('linli'), b, '--json', 'p2p', 'sync', ticketA, '--bind', '127.0.0.1:0'))
    assert.ok(out.created + out.changed >= 1, JSON.stringify(out))
    assert.match(linli(bin('linli'), b, '--reveal', '--reason', '核对', 'show', hit.id), /13600003333/)
  } catch (e) {
    failed(e, procs)
  } finally {
    await stop()
  }
})

test('the demo community on a desktop and on a tablet, portrait and landscape', async () => {
  let { s, stop } = await driver(join(tmp, 'demo'), { LINLI_DEMO: '2000' })
  try {
    await s.waitFor('[data-test=card-households]', { text: '2000', ms: 60000 })
    // The demo's overdue requests are reminded once, shortly after the first screen.
    await s.waitFor('.reminder', { text: '已超期', ms: 20000 })
    await sleep(600) // it slides in
    await s.screenshot(join(shots, 'reminder.png'))
    await s.click('.reminder .el-notification__closeBtn')
    for (let i = 0; i < 50 && (await s.findAll('.reminder')).length; i++) await sleep(100)
    await sleep(800) // the charts animate in
    await s.screenshot(join(shots, 'overview.png'))
    const first = Number(await s.exec('return document.documentElement.dataset.firstScreenMs ?? "0"'))
    assert.ok(first > 0, 'the first screen reported its time')
    // The menu reminds of overdue requests, as many as the overview counts.
    const overdue = await s.text('.card.late .n')
    assert.ok(Number(overdue) > 0, `the demo has overdue requests: ${overdue}`)
    await s.waitFor('[data-test=overdue-badge]', { text: overdue })

    await s.click('[data-test=nav-roster]')
    await s.waitFor('[data-test=household-row]')
    await s.type('[data-test=search]', 'zw')
    await s.waitFor('[data-test=hit]')
    await s.screenshot(join(shots, 'roster.png'))

    // A person's page, from a search hit and the household; they move to another household.
    // The last member who lives there (a head moves only after another member is made head,
    // unless nobody else lives there).
    await s.click('[data-test=hit]')
    await s.waitFor('[data-test=member-link]')
    await s.exec(`const m = [...document.querySelectorAll('[data-test=member]')].reverse().find((m) => !m.classList.contains('gone'))
      m.querySelector('[data-test=member-link]').click()`)
    await s.waitFor('[data-test=person-name]')
    const name = await s.text('[data-test=person-name]')
    const before = await s.text('[data-test=person-household]')
    await s.click('[data-test=reveal-id]')
    await s.click('[data-test=reveal-reason-other]')
    await s.type('[data-test=reveal-reason-text]', '居民本人来电核对')
    await s.click('[data-test=reveal-confirm]')
    // Logged as the person signed in (LINLI_PASSPHRASE unlocks as LINLI_USER, default admin).
    await s.waitFor('[data-test=reveal-entry]', { text: 'admin 查看了证件号码' })
    await s.waitFor('[data-test=reveal-entry]', { text: '居民本人来电核对' })
    await s.click('[data-test=move-person]')
    await s.type('[data-test=move-target]', '李')
    await s.pick('.el-select-dropdown__item')
    await s.click('[data-test=move-save]')
    await s.waitFor('[data-test=place]', { text: '已迁出' })
    const after = await s.text('[data-test=person-household]')
    assert.notEqual(after, before, `${name} lives elsewhere now`)
    assert.equal((await s.findAll('[data-test=place]')).length, 2)
    await sleep(3500) // the dialog fades out, the messages go
    await s.screenshot(join(shots, 'person.png'))

    await s.go('#/requests')
    await s.waitFor('[data-test=request-row]')
    await s.screenshot(join(shots, 'requests.png'))

    // An inspection task: created from a template, an item fails and becomes a request.
    await s.go('#/tasks')
    await s.click('[data-test=new-task]')
    await s.click('[data-test=task-save]')
    await s.waitFor('[data-test=task-status]', { text: '待办' })
    await s.click('[data-test=pass-i1]')
    await s.click('[data-test=fail-i2]')
    await s.waitFor('[data-test=task-status]', { text: '进行中' })
    await s.screenshot(join(shots, 'task.png'))
    // A note typed on an item not ticked yet: kept as a draft (checked after the restart below).
    const taskPage = await s.exec('return location.hash')
    await s.type('[data-test=note-i3]', '灭火器压力偏低')
    await s.click('[data-test=to-request-i2]')
    await s.waitFor('[data-test=request-state]', { text: '上报' })
    assert.match(await s.text('[data-test=request-title]'), /^巡查发现：/)

    // The board: a help request claimed; a notice asking for read confirmations.
    await s.go('#/board')
    await s.click('[data-test=board-new]')
    await s.type('[data-test=board-title]', '求助：周三陪老人看病')
    await s.type('[data-test=board-body]', '上午九点，社区医院')
    await s.click('[data-test=board-save]')
    await s.click('[data-test=post-claim]')
    await s.waitFor('[data-test=post-status]', { text: '已认领' })
    await s.click('[data-test=tab-notices]')
    await s.click('[data-test=board-new]')
    await s.type('[data-test=board-title]', '停水通知')
    await s.type('[data-test=board-body]', '周五 9:00–17:00 停水，请提前储水。')
    await s.click('[data-test=board-save]')
    await s.waitFor('[data-test=notice-receipts]', { text: '已读 0 / 2000 户' })
    // A household that read it, found by a member's name (pinyin initials, as in the roster).
    await s.type('[data-test=read-household]', 'zw')
    // The suggestions' list sits in a scrolled popper WebDriver does not call displayed: picked
    // by a click in the page.
    const picked = await s.exec(`return new Promise((done) => {
      const t0 = Date.now()
      let asked = Date.now()
      const look = () => {
        // A suggestion with text: while the search runs the list holds a loading item alone.
        const li = [...document.querySelectorAll('.el-autocomplete-suggestion li')]
          .find((e) => e.textContent.trim())
        if (li) { li.click(); done(li.textContent); return }
        if (Date.now() - t0 > 15000) {
          // What the page showed instead, for the failure message.
          const input = document.querySelector('[data-test=read-household] input, input[data-test=read-household]')
          const shown = [...document.querySelectorAll('.el-message, .el-autocomplete-suggestion')]
            .map((e) => e.className + ': ' + e.textContent).join(' | ')
          done('nothing suggested; input "' + (input && input.value) + '", focused ' + (document.activeElement === input) + '; shown: ' + shown)
          return
        }
        // No suggestions yet (a busy machine): ask again, as typing does.
        if (Date.now() - asked > 1500) {
          const input = document.querySelector('[data-test=read-household] input, input[data-test=read-household]')
          input.focus()
          input.dispatchEvent(new Event('input', { bubbles: true }))
          asked = Date.now()
        }
        setTimeout(look, 100)
      }
      look()
    })`)
    assert.match(picked, /室 · /, `a household was suggested (${picked})`)
    await s.click('[data-test=confirm-read]')
    await s.waitFor('[data-test=notice-receipts]', { text: '已读 1 / 2000 户' })
    await sleep(600) // the dialog and the messages fade out
    await s.screenshot(join(shots, 'board.png'))

    for (const [w, h, name] of [[800, 1280, 'visits-tablet-portrait.png'], [1280, 800, 'visits-tablet-landscape.png']]) {
      await s.resize(w, h)
      await s.go('#/visits')
      await s.waitFor('[data-test=visit-household]')
      await s.click('[data-test=outcome-not-home]')
      await s.waitFor('[data-test=visit-retry]')
      // Touch targets: the outcome buttons are at least 44 px high.
      const height = await s.exec("return document.querySelector('[data-test=outcome-done] .el-radio-button__inner').getBoundingClientRect().height")
      assert.ok(height >= 44, `touch target ${height}px`)
      await sleep(500) // the second time, the draft of the first size is read back: let the buttons settle
      await s.screenshot(join(shots, name))
      await s.go('#/roster')
    }

    // Nothing typed is lost by closing the app: a request being written survives a restart
    // as a draft, and is gone once saved.
    await s.resize(1280, 800)
    await s.go('#/requests')
    await s.click('[data-test=new-request]')
    await s.type('[data-test=request-title]', '电梯异响')
    await s.type('[data-test=request-description]', '5栋2单元，夜间明显')
    await sleep(1000) // each keystroke is written as it is typed; let the last write land
    await stop()
    ;({ s, stop } = await driver(join(tmp, 'demo')))
    await s.waitFor('[data-test=card-households]', { text: '2000', ms: 60000 })
    await s.go('#/requests')
    await s.waitFor('[data-test=has-draft]', { text: '有草稿' })
    await s.click('[data-test=new-request]')
    await s.waitFor('[data-test=draft-restored]', { text: '已恢复上次未保存的内容' })
    const field = (name) => s.exec(`return document.querySelector(':is(input, textarea)[data-test=${name}], [data-test=${name}] :is(input, textarea)').value`)
    assert.equal(await field('request-title'), '电梯异响')
    assert.equal(await field('request-description'), '5栋2单元，夜间明显')
    await s.click('[data-test=request-save]')
    await s.waitFor('[data-test=request-title]', { text: '电梯异响' })
    await s.go(taskPage)
    await s.waitFor('[data-test=draft-restored]')
    assert.equal(await field('note-i3'), '灭火器压力偏低')
    await s.go('#/requests')
    await s.waitFor('[data-test=request-row]')
    assert.equal((await s.findAll('[data-test=has-draft]')).length, 0, 'saved: no draft left')
  } catch (e) {
    failed(e, procs)
  } finally {
    await stop()
  }
})

test('devices that join with an invitation code see what their role may: a grid worker its grid, an owners\' committee member the board', async () => {
  const relay = start(bin('linli-relay'), ['--data', join(tmp, 'relay3'), '--listen', '127.0.0.1:0', '--reserve-mb', '16'], { LINLI_LOG: 'warn' })
  procs.push(relay)
  const relayUrl = (await relay.first).trim().split(' ').pop()
  const office = join(tmp, 'office')
  linli(bin('linli'), office, 'demo', '--households', '120', '--seed', '3')
  linli(bin('linli'), office, 'sync', '--relay', relayUrl)
  const count = (...filter) => JSON.parse(linli(bin('linli'), office, '--json', 'list', 'households', ...filter)).length
  const [g01, all] = [count('--grid', 'G01'), count()]
  assert.ok(g01 > 0 && g01 < all, `${g01} of ${all}`)

  // First start: join with the code the office's device printed.
  const joinWith = async (dir, role, user) => {
    const code = linli(bin('linli'), office, 'invite', ...role).trim().split('\n').pop()
    const d = await driver(dir)
    await d.s.click('[data-test=mode-join]')
    await d.s.type('[data-test=invite-code]', code)
    await d.s.type('[data-test=user-name]', user)
    await d.s.click('[data-test=start]')
    return d
  }
  const nav = (s, name) => s.findAll(`[data-test=nav-${name}]`).then((l) => l.length)
  const role = (s) => s.exec("return document.querySelector('[data-test=role]').textContent")

  let { s, stop } = await joinWith(join(tmp, 'grid'), ['--role', 'grid', '--grid', 'G01'], '李网格')
  try {
    // The residents of G01 only, once the background sync brought them from the relay.
    await s.waitFor('[data-test=roster-count]', { text: `共 ${g01} 户`, ms: 30000 })
    assert.match(await role(s), /网格员 · 李网格/)
    assert.equal(await nav(s, 'overview'), 0, 'no overview for a grid worker')
    assert.ok((await nav(s, 'visits')) > 0)
    await s.go('#/overview')
    await s.waitFor('[data-test=roster-count]')
    assert.equal(await s.exec('return location.hash'), '#/roster')
  } catch (e) {
    failed(e, procs)
  } finally {
    await stop()
  }

  ;({ s, stop } = await joinWith(join(tmp, 'owners'), ['--role', 'owners'], '赵业委'))
  try {
    await s.waitFor('[data-test=tab-notices]')
    assert.match(await role(s), /业委会成员 · 赵业委/)
    assert.equal(await s.exec('return location.hash'), '#/board')
    for (const name of ['overview', 'roster', 'visits', 'tasks']) assert.equal(await nav(s, name), 0, `no ${name} for owners`)
    await s.go('#/roster')
    await s.waitFor('[data-test=tab-notices]')
    assert.equal(await s.exec('return location.hash'), '#/board')
  } catch (e) {
    failed(e, procs)
  } finally {
    await stop()
  }
})
