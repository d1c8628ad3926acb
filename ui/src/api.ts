// The front end's only way to the store: Tauri commands (one per operation of linli-api)
// and two events. Types mirror the Rust types' JSON.
import { invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'

/** An error from a command: a stable code the UI branches on, and a message for people. */
export interface ApiError {
  code: string
  message: string
}

export function isApiError(e: unknown): e is ApiError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e
}

export interface Grid { id: string; name: string; worker: string }
export interface Category { code: string; name: string; deadline_hours: number }
export interface CommunityInfo {
  id: string
  name: string
  street: string
  grids: Grid[]
  compounds: string[]
  categories: Category[]
}
export interface RoleInfo {
  code: 'staff' | 'grid' | 'owners'
  grids: string[]
  may_reveal: boolean
  may_manage: boolean
  may_edit_roster: boolean
  /** May publish notices (staff, owners' committee). */
  may_publish: boolean
}
export interface AppStatus {
  community: CommunityInfo | null
  role: RoleInfo | null
  user: string
  device: string
  data_dir: string
  households: number
}

export interface BuildingNode { name: string; grid: string | null; households: number; units: string[] }
export interface CompoundNode { name: string; households: number; buildings: BuildingNode[] }

export interface HouseholdQuery {
  compound?: string
  building?: string
  unit?: string
  grid?: string
  tag?: string
  not_visited_since?: string
}
export interface HouseholdRow {
  id: string
  grid: string | null
  compound: string
  building: string
  unit: string
  room: string
  tenure: string
  members: number
  head: string
  tags: string[]
  last_visit: number | null
  unsynced: boolean
}
export interface Address { compound: string; building: string; unit: string; room: string }
export interface Person {
  id: string
  name: string
  gender: 'male' | 'female'
  birth: string
  relation: string
  residence: string
  ethnicity: string
  moved_in: string | null
  moved_out: string | null
  deceased: string | null
  workplace: string
  notes: string
}
export interface Household {
  id: string
  scope: { community: string; grid: string | null }
  address: Address
  area: string
  usage: string
  tenure: string
  head: string | null
  members: Person[]
  tags: string[]
  notes: string
  last_visit: string | null
}
export interface MemberView {
  person: Person
  id_type: string
  id_number: string
  phone: string
  tags: string[]
  health: string
  /** Whether they may leave now: not the head while others still live there (the backend's rule). */
  may_leave: boolean
}
export interface VisitRow {
  id: string
  at: number
  outcome: string
  method: string
  worker: string
  retry_on: string | null
  follow_up: string
  notes: string
}
export interface HouseholdView {
  household: Household
  members: MemberView[]
  visits: VisitRow[]
  unsynced: boolean
}
export interface PlaceRow {
  household: string
  address: Address
  relation: string
  moved_in: string | null
  moved_out: string | null
  deceased: string | null
}
/** An entry of this device's audit log (who revealed what, when). */
export interface AuditEntry { seq: number; at: number; user: string; action: string; target: string; detail: string }
export interface PersonView {
  member: MemberView
  household: string
  address: Address
  grid: string | null
  places: PlaceRow[]
  reveals: AuditEntry[]
  unsynced: boolean
}
/** A device synced with directly before; the background loop syncs with it when it answers. */
export interface KnownPeer {
  key: string
  ticket: string
  /** The role in words (English, from the device itself); `role`/`grids` name it on screen. */
  label: string
  role: string | null
  grids: string[]
  last_synced_ms: number | null
  last_error: string | null
}
/** A device of this community announced on the local network (while this one serves there). */
export interface NearbyPeer { key: string; addrs: string[] }
export interface PeersStatus { ticket: string | null; known: KnownPeer[]; nearby: NearbyPeer[] }
export interface Hit {
  id: string
  name: string
  household: string
  address: string
  grid: string | null
  relation: string
  /** Lives there now (not moved out, not deceased). */
  present: boolean
  matched: string
}
export interface NewHousehold {
  address: Address
  grid?: string | null
  tenure: string
  area_m2: number
  head_name: string
  gender: string
  birth: string
  residence: string
  id_type: string
  id_number: string
  phone: string
  tags: string[]
}
export interface NewMember {
  name: string
  gender: string
  birth: string
  relation: string
  residence: string
  id_type: string
  id_number: string
  phone: string
}
export interface NewVisit {
  household: string
  method: 'in_person' | 'phone' | 'wechat'
  outcome: 'done' | 'not_home'
  retry_on?: string | null
  changes?: { person: string; change: 'new' | 'moved_out' | 'deceased' | 'updated'; note: string }[]
  follow_up?: string
  notes?: string
}

export type RequestState =
  | 'reported' | 'accepted' | 'dispatched' | 'in_progress' | 'done'
  | 'verified' | 'closed' | 'rejected' | 'returned' | 'reopened'
export interface RequestQuery { state?: string; grid?: string; open?: boolean; overdue?: boolean }
/** An open request that became overdue or nearly due since the last look (shown once). */
export interface Reminder { id: string; title: string; grid: string | null; kind: 'overdue' | 'due_soon'; deadline: number }
export interface RequestRow {
  id: string
  grid: string | null
  title: string
  state: RequestState | 'conflict'
  created: number
  deadline: number | null
  overdue: boolean
  household: string | null
  unsynced: boolean
}
export interface Step {
  id: string
  prev: string | null
  merges: string[]
  to: RequestState
  by: string
  at: number
  comment: string
}
export interface RequestEvent { id: string; kind: string; by: string; at: number; comment: string }
export interface ServiceRequest {
  id: string
  scope: { community: string; grid: string | null }
  title: string
  description: string
  category: string
  reporter_name: string
  household: string | null
  created: number
  deadline: number
  steps: Step[]
  events: RequestEvent[]
  satisfaction: string | null
}
export type LoopStatus =
  | { status: 'settled'; state: RequestState; step: string }
  | { status: 'conflict'; branches: Step[] }
export interface RequestView {
  request: ServiceRequest
  status: LoopStatus
  next: RequestState[]
  deadline: number
  overdue: boolean
  category_name: string
  unsynced: boolean
}
export interface NewRequest {
  title: string
  description?: string
  category: string
  household?: string | null
  reporter_name?: string
  grid?: string | null
}

export interface Overview {
  households: number
  people: number
  tags: [string, number][]
  visits: { grid: string; households: number; visited: number }[]
  requests: [string, number][]
  overdue: number
  tasks: { grid: string; tasks: number; done: number }[]
  month_start: string
  open_requests: number
}

export type SyncPhase = 'no_relay' | 'idle' | 'syncing' | 'synced' | 'offline' | 'failed'
export interface SyncStatus {
  phase: SyncPhase
  relay: string | null
  last_synced_ms: number | null
  pending: number
  last_error: string | null
  failures: number
  next_attempt_ms: number | null
  last_received: number
  last_sent: number
  /** Connected: changes arrive as they are made. */
  live: boolean
  /** Received blobs that could not be read, set aside (sync went on without them). */
  set_aside: number
  /** The order statuses were read in: a larger one was read later (see `showSync`). */
  rev: number
}

/** A blob received from the relay that this device could not read. */
export interface SetAside {
  peer: string
  seq: number
  scope: string
  sender: string
  received_ms: number
  reason: string
  bytes: number
  /** Nothing of it could be read (otherwise some of its documents were merged). */
  whole: boolean
}

export interface Template { name: string; items: string[] }
export interface TaskRow {
  id: string
  grid: string | null
  title: string
  status: 'open' | 'in_progress' | 'done'
  due: string
  overdue: boolean
  checked: number
  items: number
  unsynced: boolean
}
export interface ChecklistItem { id: string; item: string; ok: boolean | null; note: string; request: string | null }
export interface Task {
  id: string
  scope: { community: string; grid: string | null }
  title: string
  kind: string
  compound: string
  building: string
  due: string | null
  status: TaskRow['status']
  assignee: string
  checklist: ChecklistItem[]
  notes: string
}
export interface TaskView { task: Task; unsynced: boolean }
export interface NewTask { template: string; compound: string; building: string; due?: string | null; assignee?: string }

export interface BoardRow { id: string; title: string; status: string; at: number; unsynced: boolean }
export interface Reply { id: string; author: string; at: number; body: string }
export interface HelpPost {
  id: string
  kind: 'offer' | 'request'
  title: string
  body: string
  author: string
  at: number
  status: 'open' | 'claimed' | 'done' | 'withdrawn'
  claimed_by: string | null
  replies: Reply[]
}
export interface Notice {
  id: string
  title: string
  body: string
  author: string
  published: number
  receipts_required: boolean
  receipts: Record<string, number>
}
export interface NoticeView { notice: Notice; confirmed: number; households: number }

export interface PeerSync { peer: string; role: string | null; grids: string[]; sent: number; received: number; ms: number }

export const api = {
  status: () => invoke<AppStatus>('status'),
  createCommunity: (name: string, street: string, user: string) =>
    invoke<AppStatus>('create_community', { name, street, user }),
  startDemo: (user: string) => invoke<AppStatus>('start_demo', { user }),
  join: (code: string, user: string) => invoke<AppStatus>('join', { code, user }),
  invite: (role: string, grids: string[]) => invoke<string>('invite', { role, grids }),
  overview: () => invoke<Overview>('overview'),
  compounds: () => invoke<CompoundNode[]>('compounds'),
  households: (query: HouseholdQuery) => invoke<HouseholdRow[]>('households', { query }),
  household: (id: string) => invoke<HouseholdView>('household', { id }),
  person: (id: string) => invoke<PersonView>('person', { id }),
  movePerson: (person: string, to: string, relation: string) => invoke<null>('move_person', { person, to, relation }),
  setHead: (household: string, person: string) => invoke<null>('set_head', { household, person }),
  search: (text: string) => invoke<Hit[]>('search', { text }),
  reveal: (person: string, field: 'id_number' | 'phone') => invoke<string>('reveal', { person, field }),
  edit: (id: string, field: string, value: string) => invoke<boolean>('edit', { id, field, value }),
  addHousehold: (input: NewHousehold) => invoke<string>('add_household', { input }),
  addMember: (household: string, input: NewMember) => invoke<string>('add_member', { household, input }),
  moveOut: (person: string) => invoke<boolean>('move_out', { person, day: null }),
  markDeceased: (person: string) => invoke<boolean>('mark_deceased', { person, day: null }),
  recordVisit: (input: NewVisit) => invoke<string>('record_visit', { input }),
  requests: (query: RequestQuery) => invoke<RequestRow[]>('requests', { query }),
  reminders: () => invoke<Reminder[]>('reminders'),
  draft: (form: string, subject: string) => invoke<unknown>('draft', { form, subject }),
  saveDraft: (form: string, subject: string, value: unknown) => invoke<void>('save_draft', { form, subject, value }),
  clearDraft: (form: string, subject: string) => invoke<void>('clear_draft', { form, subject }),
  request: (id: string) => invoke<RequestView>('request', { id }),
  reportRequest: (input: NewRequest) => invoke<string>('report_request', { input }),
  advanceRequest: (id: string, to: RequestState, comment: string) =>
    invoke<RequestView>('advance_request', { id, to, comment }),
  settleRequest: (id: string, keep: string, comment: string) =>
    invoke<RequestView>('settle_request', { id, keep, comment }),
  rateRequest: (id: string, satisfaction: string) =>
    invoke<RequestView>('rate_request', { id, satisfaction }),
  remindRequest: (id: string, comment: string) => invoke<RequestView>('remind_request', { id, comment }),
  taskTemplates: () => invoke<Template[]>('task_templates'),
  tasks: (grid: string | null) => invoke<TaskRow[]>('tasks', { grid }),
  task: (id: string) => invoke<TaskView>('task', { id }),
  createTask: (input: NewTask) => invoke<string>('create_task', { input }),
  checkItem: (task: string, item: string, ok: boolean, note: string) =>
    invoke<TaskView>('check_item', { task, item, ok, note }),
  itemToRequest: (task: string, item: string) => invoke<string>('item_to_request', { task, item }),
  posts: () => invoke<BoardRow[]>('posts'),
  post: (id: string) => invoke<HelpPost>('post', { id }),
  createPost: (kind: string, title: string, body: string) => invoke<string>('create_post', { kind, title, body }),
  replyPost: (id: string, body: string) => invoke<HelpPost>('reply_post', { id, body }),
  movePost: (id: string, to: string) => invoke<HelpPost>('move_post', { id, to }),
  notices: () => invoke<BoardRow[]>('notices'),
  notice: (id: string) => invoke<NoticeView>('notice', { id }),
  publishNotice: (title: string, body: string, receipts_required: boolean) =>
    invoke<string>('publish_notice', { title, body, receipts_required }),
  confirmRead: (id: string, household: string) => invoke<NoticeView>('confirm_read', { id, household }),
  servePeers: (on: boolean) => invoke<string | null>('serve_peers', { on }),
  syncPeer: (ticket: string) => invoke<PeerSync>('sync_peer', { ticket }),
  peersStatus: () => invoke<PeersStatus>('peers_status'),
  forgetPeer: (key: string) => invoke<boolean>('forget_peer', { key }),
  syncStatus: () => invoke<SyncStatus>('sync_status'),
  setRelay: (url: string) => invoke<SyncStatus>('set_relay', { url }),
  syncNow: () => invoke<SyncStatus>('sync_now'),
  setAside: () => invoke<SetAside[]>('set_aside'),
  dropSetAside: () => invoke<number>('drop_set_aside'),
}

export function onSyncStatus(cb: (s: SyncStatus) => void): Promise<UnlistenFn> {
  return listen<SyncStatus>('sync-status', (e) => cb(e.payload))
}

export function onDocsChanged(cb: (received: number) => void): Promise<UnlistenFn> {
  return listen<number>('docs-changed', (e) => cb(e.payload))
}
