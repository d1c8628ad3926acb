// The UI's logic, kept out of components so that it is tested on its own (tests/logic.test.ts).
import type { Hit, HouseholdRow, RequestState, SyncStatus } from './api'

/** The time zone every instant is shown in: China Standard Time. */
export const ZONE = 'Asia/Shanghai'

export type Locale = 'zh-CN' | 'en'

/** An instant (ms) as a date and time: `2026年11月24日 14:30` (zh-CN) or `2026-11-24 14:30`. */
export function formatTime(ms: number, locale: Locale): string {
  const parts = partsOf(ms)
  if (locale === 'zh-CN') {
    return `${parts.year}年${Number(parts.month)}月${Number(parts.day)}日 ${parts.hour}:${parts.minute}`
  }
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`
}

/** A day (`YYYY-MM-DD`) as `2026年11月24日` (zh-CN) or itself. */
export function formatDay(day: string | null | undefined, locale: Locale): string {
  if (!day) return ''
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day)
  if (!m) return day
  return locale === 'zh-CN' ? `${m[1]}年${Number(m[2])}月${Number(m[3])}日` : day
}

function partsOf(ms: number): Record<string, string> {
  const f = new Intl.DateTimeFormat('en-CA', {
    timeZone: ZONE,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  })
  const out: Record<string, string> = {}
  for (const p of f.formatToParts(new Date(ms))) out[p.type] = p.value
  return out
}

/** Today in China time, `YYYY-MM-DD`. */
export function today(now: number = Date.now()): string {
  const p = partsOf(now)
  return `${p.year}-${p.month}-${p.day}`
}

/** The first day of this month in China time, `YYYY-MM-01`. */
export function monthStart(now: number = Date.now()): string {
  const p = partsOf(now)
  return `${p.year}-${p.month}-01`
}

/** A day `n` days after `day`. */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + n)
  return d.toISOString().slice(0, 10)
}

type T = (key: string, params?: Record<string, unknown>) => string

/** What the always-visible sync status says, and its tone. */
export function syncLabel(s: SyncStatus | null, now: number, t: T): { tone: 'ok' | 'busy' | 'warn' | 'off'; text: string } {
  if (!s) return { tone: 'off', text: t('sync.unknown') }
  const label = syncPhaseLabel(s, now, t)
  // Data nobody here can read was set aside: sync goes on, but staff should look.
  if (s.set_aside > 0) return { tone: 'warn', text: label.text + ' · ' + t('sync.setAside', { n: s.set_aside }) }
  return label
}

function syncPhaseLabel(s: SyncStatus, now: number, t: T): { tone: 'ok' | 'busy' | 'warn' | 'off'; text: string } {
  const waiting = s.pending > 0 ? ' · ' + t('sync.waiting', { n: s.pending }) : ''
  switch (s.phase) {
    case 'no_relay':
      return { tone: 'off', text: t('sync.noRelay') + waiting }
    case 'syncing':
      return { tone: 'busy', text: t('sync.syncing') }
    case 'offline':
    case 'failed':
      return { tone: 'warn', text: t(s.phase === 'offline' ? 'sync.offline' : 'sync.failed') + waiting }
    default: {
      if (s.live && s.pending === 0) return { tone: 'ok', text: t('sync.live') }
      if (s.last_synced_ms === null) return { tone: 'off', text: t('sync.never') + waiting }
      const minutes = Math.max(0, Math.floor((now - s.last_synced_ms) / 60000))
      const ago = minutes === 0 ? t('sync.justNow') : t('sync.minutesAgo', { n: minutes })
      return { tone: s.pending > 0 ? 'warn' : 'ok', text: t('sync.synced', { ago }) + waiting }
    }
  }
}

/** How a deadline stands: time left, or how late. */
export function deadlineText(deadline: number | null, now: number, t: T, settledAt: number | null = null): { late: boolean; text: string } {
  if (deadline === null) return { late: false, text: '' }
  // A request closed or rejected is judged at that moment: on time, or how late.
  const at = settledAt ?? now
  const hours = Math.round((deadline - at) / 3600000)
  const late = deadline < at
  const abs = Math.abs(hours)
  const span = abs >= 48 ? t('time.days', { n: Math.round(abs / 24) }) : t('time.hours', { n: Math.max(abs, 1) })
  if (settledAt !== null) return { late, text: late ? t('requests.settledLate', { span }) : t('requests.onTime') }
  return { late, text: late ? t('requests.lateBy', { span }) : t('requests.left', { span }) }
}

/** A household's address: `幸福里小区3栋2单元501室` or `幸福里小区 Bldg 3, Unit 2, Room 501`. */
export function addressOf(a: { compound: string; building: string; unit: string; room: string }, locale: Locale): string {
  return locale === 'zh-CN'
    ? `${a.compound}${a.building}栋${a.unit}单元${a.room}室`
    : `${a.compound} Bldg ${a.building}, Unit ${a.unit}, Room ${a.room}`
}

/** The household to visit after `current` in address order: the next one not visited since
 *  `since` (ms), wrapping round; none when every household has been visited. */
export function nextHousehold(rows: HouseholdRow[], current: string | null, since: number): HouseholdRow | null {
  const open = (r: HouseholdRow) => r.last_visit === null || r.last_visit < since
  const start = current === null ? -1 : rows.findIndex((r) => r.id === current)
  for (let k = 1; k <= rows.length; k++) {
    const r = rows[(start + k + rows.length) % rows.length]
    if (r && r.id !== current && open(r)) return r
  }
  return null
}

/** Rows grouped by unit, in the order they come. */
export function groupByUnit(rows: HouseholdRow[]): { unit: string; rows: HouseholdRow[] }[] {
  const out: { unit: string; rows: HouseholdRow[] }[] = []
  for (const r of rows) {
    const last = out[out.length - 1]
    if (last && last.unit === r.unit) last.rows.push(r)
    else out.push({ unit: r.unit, rows: [r] })
  }
  return out
}

/** Element Plus tag type for a request state. */
export function stateTone(state: RequestState | 'conflict'): 'primary' | 'success' | 'warning' | 'danger' | 'info' {
  switch (state) {
    case 'closed':
    case 'verified':
      return 'success'
    case 'rejected':
      return 'info'
    case 'returned':
    case 'reopened':
    case 'conflict':
      return 'danger'
    case 'done':
      return 'warning'
    default:
      return 'primary'
  }
}

/** States whose step needs a reason (a comment). */
export function needsReason(to: RequestState): boolean {
  return to === 'rejected' || to === 'returned' || to === 'reopened'
}

/** Calls `fn` once input has paused for `ms` milliseconds (search as you type). */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined
  return (...args: A) => {
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => fn(...args), ms)
  }
}

/** Start of a day (`YYYY-MM-DD`) in China time, in ms. */
export function dayStartMs(day: string): number {
  return Date.parse(`${day}T00:00:00+08:00`)
}

/** Writes a form's draft as it is typed: the latest state only, one write at a time and in
 *  order (a slow write is never overtaken by an older one); `null` forgets the draft. A failed
 *  write is reported once, until a write succeeds again; the next keystroke tries again. */
export class DraftSaver {
  /** What the store holds as far as known (`undefined`: not known). */
  private saved: string | null | undefined = undefined
  private next: string | null | undefined = undefined
  private running: Promise<void> | null = null
  private failing = false

  constructor(
    private readonly write: (json: string | null) => Promise<unknown>,
    private readonly failed: (e: unknown) => void = () => {},
  ) {}

  /** The store holds `json` (just read from it): writing it again is needless. */
  known(json: string | null) {
    this.saved = json
  }

  /** Asks for `json` to be kept (or, `null`, the draft forgotten); resolves once written. */
  set(json: string | null): Promise<void> {
    this.next = json
    this.running ??= this.run()
    return this.running
  }

  /** Resolves when every write asked for so far has been tried. */
  settled(): Promise<void> {
    return this.running ?? Promise.resolve()
  }

  private async run() {
    // Suspended first, so that `running` is set before this can end; between the last look at
    // `next` and clearing `running` nothing else runs, so no request is left behind.
    await Promise.resolve()
    while (this.next !== undefined) {
      const json = this.next
      this.next = undefined
      if (json === this.saved) continue
      try {
        await this.write(json)
        this.saved = json
        this.failing = false
      } catch (e) {
        if (!this.failing) this.failed(e)
        this.failing = true
      }
    }
    this.running = null
  }
}

/** A draft read back into a form: the form's blank values, overlaid with the draft's fields
 *  that the form has (a draft from an older version of a form brings no stray fields). */
export function fromDraft<T extends object>(blank: T, draft: unknown): T | null {
  if (typeof draft !== 'object' || draft === null || Array.isArray(draft)) return null
  const out = { ...blank } as Record<string, unknown>
  for (const [k, v] of Object.entries(draft as Record<string, unknown>)) {
    if (k in out && v !== undefined) out[k] = v
  }
  return out as T
}

/** The codes of the roster's choices, as the backend knows them (labels come from i18n). */
export const CODES = {
  tags: ['独居老人', '残疾人', '低保', '退役军人', '流动人口', '重点关注'],
  idTypes: ['resident_id', 'passport', 'hmt_permit', 'foreign_permanent', 'other'],
  residence: ['registered', 'floating', 'staying'],
  relation: ['head', 'spouse', 'child', 'parent', 'grandchild', 'other', 'tenant'],
  tenure: ['owner_occupied', 'rented', 'empty'],
} as const

/** Age in whole years on `day` (both `YYYY-MM-DD`). */
export function ageOn(birth: string, day: string): number {
  const [by, bm, bd] = birth.split('-').map(Number)
  const [y, m, d] = day.split('-').map(Number)
  return y - by - (m < bm || (m === bm && d < bd) ? 1 : 0)
}

/** The households a person could move into, from search hits: each once, in the order found,
 *  without the one they live in. */
export function moveTargets(hits: Hit[], current: string): { household: string; address: string }[] {
  const seen = new Set([current])
  const out: { household: string; address: string }[] = []
  for (const h of hits) {
    if (seen.has(h.household)) continue
    seen.add(h.household)
    out.push({ household: h.household, address: h.address })
  }
  return out
}

/** The devices Settings lists: every known one (marked when it is announced on this network),
 *  then the community's devices announced nearby that were never synced with. */
export function peerRows(
  known: { key: string; label: string }[],
  nearby: { key: string }[],
): { key: string; label: string | null; known: boolean; nearby: boolean }[] {
  const here = new Set(nearby.map((n) => n.key))
  const rows = known.map((k) => ({ key: k.key, label: k.label as string | null, known: true, nearby: here.has(k.key) }))
  const seen = new Set(known.map((k) => k.key))
  for (const n of nearby) {
    if (!seen.has(n.key)) rows.push({ key: n.key, label: null, known: false, nearby: true })
  }
  return rows
}

/** A device named in the screen's language: its role and a grid worker's grids; a device never
 *  synced with (only seen on the network) by the start of its key. */
export function peerName(
  t: T,
  p: { role: string | null; grids: string[]; label?: string | null } | null | undefined,
  key = '',
): string {
  if (p?.role) {
    const role = t(`roles.${p.role}`)
    return p.grids.length ? `${role} ${p.grids.join('、')}` : role
  }
  return p?.label || t('settings.nearbyDevice', { key: key.slice(0, 8) })
}

/** The reminder the app shows for requests that became overdue or nearly due: a title, a line
 *  with the counts and the first titles, and where a click leads. */
export function reminderText(
  t: T,
  reminders: { title: string; kind: 'overdue' | 'due_soon' }[],
): { title: string; message: string; path: string } {
  const overdue = reminders.filter((r) => r.kind === 'overdue').length
  const soon = reminders.length - overdue
  const counts = [
    overdue ? t('reminders.overdue', { n: overdue }) : '',
    soon ? t('reminders.dueSoon', { n: soon }) : '',
  ].filter(Boolean).join(t('reminders.and'))
  const titles = reminders.slice(0, 3).map((r) => r.title).join('、')
  const more = reminders.length > 3 ? t('reminders.more') : ''
  return {
    title: t('reminders.title'),
    message: `${counts}：${titles}${more}`,
    path: overdue ? '/requests?overdue=1' : '/requests?open=1',
  }
}

/** What a role's screens depend on. */
export interface RoleView {
  code: string
  may_manage: boolean
  may_edit_roster: boolean
}

/** A role's first screen: the overview for staff, the residents for grid workers, the board
 *  (notices, neighbour help) for owners' committee members. */
export function homeFor(role: RoleView | null | undefined): string {
  if (!role) return '/welcome'
  if (role.may_manage) return '/overview'
  return role.code === 'owners' ? '/board' : '/roster'
}

/** Whether a role has the screen at `path` (the menu shows the same ones). */
export function allowedFor(path: string, role: RoleView | null | undefined): boolean {
  const top = '/' + (path.split('/')[1] ?? '')
  if (top === '/welcome') return !role
  if (!role) return false
  switch (top) {
    case '/overview':
      return role.may_manage
    case '/roster':
    case '/household':
    case '/person':
      return role.code !== 'owners'
    case '/visits':
    case '/tasks':
    case '/task':
      return role.may_edit_roster
    default:
      return true
  }
}
