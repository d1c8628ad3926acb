import { describe, expect, it } from 'vitest'
import type { HouseholdRow, SyncStatus } from '../src/api'
import {
  addDays, addressOf, dayStartMs, deadlineText, formatDay, formatTime, groupByUnit, monthStart,
  ageOn, moveTargets, peerName, peerRows, reminderText, needsReason, nextHousehold, stateTone, syncLabel, today,
} from '../src/logic'
import { i18n } from '../src/i18n'

const t = (k: string, p?: Record<string, unknown>) => i18n.global.t(k, p ?? {})
// 2026-03-05 09:30 in China time.
const T0 = Date.parse('2026-03-05T01:30:00Z')

describe('dates in China time', () => {
  it('formats instants the Chinese way in zh-CN', () => {
    expect(formatTime(T0, 'zh-CN')).toBe('2026年3月5日 09:30')
    expect(formatTime(T0, 'en')).toBe('2026-03-05 09:30')
  })
  it('formats days', () => {
    expect(formatDay('2026-11-04', 'zh-CN')).toBe('2026年11月4日')
    expect(formatDay('2026-11-04', 'en')).toBe('2026-11-04')
    expect(formatDay(null, 'en')).toBe('')
  })
  it('knows today and the month in China, not UTC', () => {
    // 2026-03-31 20:00 UTC is already 1 April in China.
    const late = Date.parse('2026-03-31T20:00:00Z')
    expect(today(late)).toBe('2026-04-01')
    expect(monthStart(late)).toBe('2026-04-01')
    expect(dayStartMs('2026-04-01')).toBe(Date.parse('2026-03-31T16:00:00Z'))
    expect(addDays('2026-02-27', 3)).toBe('2026-03-02')
  })
})

function status(p: Partial<SyncStatus>): SyncStatus {
  return {
    phase: 'synced', relay: 'http://127.0.0.1:8080', last_synced_ms: null, pending: 0,
    last_error: null, failures: 0, next_attempt_ms: null, last_received: 0, last_sent: 0, live: false, set_aside: 0, rev: 1, ...p,
  }
}

describe('the sync status line', () => {
  it('says how long ago the last sync was and what waits', () => {
    i18n.global.locale.value = 'zh-CN'
    expect(syncLabel(status({ last_synced_ms: T0 - 5 * 60000 }), T0, t)).toEqual({ tone: 'ok', text: '已同步（5 分钟前）' })
    expect(syncLabel(status({ last_synced_ms: T0, pending: 3 }), T0, t)).toEqual({ tone: 'warn', text: '已同步（刚刚） · 3 项待同步' })
    expect(syncLabel(status({ phase: 'offline', pending: 2 }), T0, t).text).toBe('离线，稍后重试 · 2 项待同步')
    // Data set aside is said whatever the phase, as a warning.
    expect(syncLabel(status({ live: true, set_aside: 2 }), T0, t)).toEqual({ tone: 'warn', text: '已连接，实时同步 · 2 份数据无法解读，已搁置' })
    expect(syncLabel(status({ phase: 'syncing' }), T0, t).tone).toBe('busy')
    expect(syncLabel(status({ phase: 'no_relay', relay: null }), T0, t).tone).toBe('off')
    expect(syncLabel(null, T0, t).tone).toBe('off')
  })
  it('says when it is connected and changes arrive live', () => {
    i18n.global.locale.value = 'zh-CN'
    expect(syncLabel(status({ last_synced_ms: T0 - 30 * 60000, live: true }), T0, t)).toEqual({ tone: 'ok', text: '已连接，实时同步' })
    // Something waiting to be sent still shows, connected or not.
    expect(syncLabel(status({ last_synced_ms: T0, live: true, pending: 2 }), T0, t).text).toBe('已同步（刚刚） · 2 项待同步')
  })
  it('speaks English too', () => {
    i18n.global.locale.value = 'en'
    expect(syncLabel(status({ last_synced_ms: T0 - 2 * 60000, pending: 1 }), T0, t).text).toBe('Synced (2 min ago) · 1 waiting')
    i18n.global.locale.value = 'zh-CN'
  })
})

describe('requests', () => {
  it('shows time left and lateness', () => {
    expect(deadlineText(T0 + 5 * 3600000, T0, t)).toEqual({ late: false, text: '剩余 5 小时' })
    expect(deadlineText(T0 - 3 * 86400000, T0, t)).toEqual({ late: true, text: '已超期 3 天' })
    // Settled (closed or rejected): judged when it was settled, not now.
    expect(deadlineText(T0 + 2 * 3600000, T0 + 9 * 86400000, t, T0)).toEqual({ late: false, text: '按期办结' })
    expect(deadlineText(T0 - 3 * 3600000, T0 + 9 * 86400000, t, T0)).toEqual({ late: true, text: '超期 3 小时办结' })
    expect(deadlineText(null, T0, t).text).toBe('')
  })
  it('asks a reason for rejecting, returning, reopening', () => {
    expect(needsReason('rejected') && needsReason('returned') && needsReason('reopened')).toBe(true)
    expect(needsReason('accepted')).toBe(false)
    expect(stateTone('conflict')).toBe('danger')
    expect(stateTone('closed')).toBe('success')
  })
})

function row(id: string, unit: string, room: string, last_visit: number | null = null): HouseholdRow {
  return { id, grid: 'G01', compound: '幸福里小区', building: '3', unit, room, tenure: 'owner_occupied', members: 2, head: '张三', tags: [], last_visit, unsynced: false }
}

describe('door to door', () => {
  const since = dayStartMs('2026-03-01')
  const rows = [row('a', '1', '101'), row('b', '1', '102', T0), row('c', '2', '101'), row('d', '2', '102', since - 1)]
  it('goes to the next household not visited this month, wrapping round', () => {
    expect(nextHousehold(rows, null, since)?.id).toBe('a')
    expect(nextHousehold(rows, 'a', since)?.id).toBe('c')
    expect(nextHousehold(rows, 'c', since)?.id).toBe('d')
    expect(nextHousehold(rows, 'd', since)?.id).toBe('a')
    expect(nextHousehold([row('x', '1', '1', T0)], 'x', since)).toBeNull()
  })
  it('groups by unit and writes addresses', () => {
    expect(groupByUnit(rows).map((g) => [g.unit, g.rows.length])).toEqual([['1', 2], ['2', 2]])
    expect(addressOf(rows[0]!, 'zh-CN')).toBe('幸福里小区3栋1单元101室')
    expect(addressOf(rows[0]!, 'en')).toBe('幸福里小区 Bldg 3, Unit 1, Room 101')
  })
})

describe('drafts', () => {
  it('are written latest first, in order, one at a time, and not again when unchanged', async () => {
    const { DraftSaver } = await import('../src/logic')
    const writes: (string | null)[] = []
    let inFlight = 0
    let most = 0
    const saver = new DraftSaver(async (json) => {
      inFlight++
      most = Math.max(most, inFlight)
      await new Promise((r) => setTimeout(r, 5))
      writes.push(json)
      inFlight--
    })
    // Typed quickly: the first keystroke's write starts; what is typed while it is under way
    // becomes one write, of the latest state, after it.
    void saver.set('{"notes":"老"}')
    await new Promise((r) => setTimeout(r, 1))
    void saver.set('{"notes":"老人"}')
    await saver.set('{"notes":"老人不在家"}')
    expect(writes).toEqual(['{"notes":"老"}', '{"notes":"老人不在家"}'])
    expect(most).toBe(1)
    await saver.set('{"notes":"老人不在家"}')
    expect(writes.length).toBe(2)
    await saver.set(null)
    expect(writes.at(-1)).toBe(null)
    saver.known('{"a":1}')
    await saver.set('{"a":1}')
    expect(writes.length).toBe(3)
    await saver.settled()
  })

  it('report a failing store once and write again at the next keystroke', async () => {
    const { DraftSaver } = await import('../src/logic')
    let full = true
    const kept: (string | null)[] = []
    const errors: unknown[] = []
    const saver = new DraftSaver(async (json) => {
      if (full) throw { code: 'storage_full', message: 'disk full' }
      kept.push(json)
    }, (e) => errors.push(e))
    await saver.set('{"t":"a"}')
    await saver.set('{"t":"ab"}')
    expect(errors.length).toBe(1)
    full = false
    await saver.set('{"t":"abc"}')
    expect(kept).toEqual(['{"t":"abc"}'])
    full = true
    await saver.set('{"t":"abcd"}')
    expect(errors.length).toBe(2)
  })

  it('are read back into the form\'s own fields only', async () => {
    const { fromDraft } = await import('../src/logic')
    const blank = { title: '', body: '', receipts: true }
    expect(fromDraft(blank, { title: '停水', stray: 1 })).toEqual({ title: '停水', body: '', receipts: true })
    expect(fromDraft(blank, null)).toBe(null)
    expect(fromDraft(blank, ['x'])).toBe(null)
    expect(fromDraft(blank, '停水')).toBe(null)
  })
})

describe('person pages', () => {
  it('counts age in whole years, birthdays included', () => {
    expect(ageOn('2015-06-01', '2026-05-31')).toBe(10)
    expect(ageOn('2015-06-01', '2026-06-01')).toBe(11)
    expect(ageOn('1949-12-31', '2026-11-25')).toBe(76)
  })
  it('offers each other household once to move into', () => {
    const hit = (id: string, household: string, address: string) => ({
      id, name: '王小明', household, address, grid: 'G01', relation: 'child' as const, present: true, matched: 'address' as const,
    })
    const hits = [hit('p1', 'hh-1', '3栋2单元501室'), hit('p2', 'hh-2', '3栋2单元502室'), hit('p3', 'hh-2', '3栋2单元502室'), hit('p4', 'hh-3', '3栋2单元503室')]
    expect(moveTargets(hits, 'hh-1')).toEqual([
      { household: 'hh-2', address: '3栋2单元502室' },
      { household: 'hh-3', address: '3栋2单元503室' },
    ])
  })
})


describe('nearby devices', () => {
  it('marks known devices announced nearby and lists new ones after them', () => {
    const known = [{ key: 'k1', label: '社区工作人员' }, { key: 'k2', label: '网格员 G01' }]
    expect(peerRows(known, [{ key: 'k3' }, { key: 'k2' }])).toEqual([
      { key: 'k1', label: '社区工作人员', known: true, nearby: false },
      { key: 'k2', label: '网格员 G01', known: true, nearby: true },
      { key: 'k3', label: null, known: false, nearby: true },
    ])
    expect(peerRows([], [])).toEqual([])
  })
  it('names a device by its role in the screen language', () => {
    expect(peerName(t, { role: 'grid', grids: ['G01', 'G02'], label: 'a grid worker for G01, G02' })).toBe('网格员 G01、G02')
    expect(peerName(t, { role: 'staff', grids: [] })).toBe('社区工作人员')
    expect(peerName(t, { role: null, grids: [], label: 'committee staff' })).toBe('committee staff')
    expect(peerName(t, undefined, 'abcdef0123456789')).toBe('本社区设备 abcdef01')
  })
})

describe('reminders', () => {
  it('counts overdue and nearly due requests and names the first three', () => {
    const r = (title: string, kind: 'overdue' | 'due_soon') => ({ title, kind })
    expect(reminderText(t, [r('楼道灯不亮', 'overdue'), r('电梯异响', 'overdue'), r('垃圾桶满溢', 'due_soon'), r('门禁损坏', 'due_soon')])).toEqual({
      title: '诉求提醒',
      message: '2 件已超期，2 件即将到期：楼道灯不亮、电梯异响、垃圾桶满溢 等',
      path: '/requests?overdue=1',
    })
    expect(reminderText(t, [r('楼道灯不亮', 'due_soon')])).toEqual({
      title: '诉求提醒', message: '1 件即将到期：楼道灯不亮', path: '/requests?open=1',
    })
  })
})

describe('screens by role', () => {
  const staff = { code: 'staff', may_manage: true, may_edit_roster: true }
  const grid = { code: 'grid', may_manage: false, may_edit_roster: true }
  const owners = { code: 'owners', may_manage: false, may_edit_roster: false }
  it('start where each role works', async () => {
    const { homeFor } = await import('../src/logic')
    expect([homeFor(staff), homeFor(grid), homeFor(owners), homeFor(null)]).toEqual(['/overview', '/roster', '/board', '/welcome'])
  })
  it('keep each role to its screens', async () => {
    const { allowedFor, homeFor } = await import('../src/logic')
    expect(allowedFor('/overview', grid)).toBe(false)
    expect(allowedFor('/household/hh-1', grid)).toBe(true)
    expect(allowedFor('/household/hh-1', owners)).toBe(false)
    expect(allowedFor('/task/t-1', owners)).toBe(false)
    expect(allowedFor('/requests', owners)).toBe(true)
    expect(allowedFor('/welcome', staff)).toBe(false)
    expect(allowedFor('/welcome', null)).toBe(true)
    expect(allowedFor('/roster', null)).toBe(false)
    for (const r of [staff, grid, owners]) expect(allowedFor(homeFor(r), r)).toBe(true)
  })
})
