// State shared by the screens: who this device is, the sync status (pushed by events) and a
// counter that screens watch to reload when synced documents arrive.
import { reactive } from 'vue'
import { ElMessage, ElNotification } from 'element-plus'
import { getCurrentWindow, UserAttentionType } from '@tauri-apps/api/window'
import { api, isApiError, onDocsChanged, onSyncStatus, type AppStatus, type SyncStatus } from './api'
import { i18n } from './i18n'
import { reminderText } from './logic'

export const state = reactive({
  status: null as AppStatus | null,
  sync: null as SyncStatus | null,
  changes: 0,
  now: Date.now(),
  /** Open requests past their deadline that this device sees: the reminder in the menu. */
  overdue: 0,
})

/** Shows a sync status unless one read later is shown already: commands' answers and the
 *  backend's events may arrive in any order, and an answer read before a change must not
 *  cover the event that reported it. */
export function showSync(s: SyncStatus) {
  if (!state.sync || s.rev >= state.sync.rev) state.sync = s
}

export async function refreshStatus() {
  state.status = await api.status()
  showSync(await api.syncStatus())
  // Not awaited: the first screen does not wait for the menu's count.
  void refreshOverdue()
}

/** Counts the open requests past their deadline (none before a community exists). */
export async function refreshOverdue() {
  if (!state.status?.community) {
    state.overdue = 0
    return
  }
  try {
    state.overdue = (await api.requests({ open: true, overdue: true })).length
  } catch {
    // shown again at the next refresh
  }
}

/** Listens to the backend's events; the clock ticks for "synced N minutes ago". */
export async function listenToBackend() {
  await onSyncStatus(showSync)
  await onDocsChanged(() => {
    state.changes++
    void refreshOverdue()
  })
  setInterval(() => {
    state.now = Date.now()
    // Deadlines pass with time, not only with changes.
    void refreshOverdue()
  }, 30000)
}

/** After a write: the header and sync status show what changed and what waits. */
export async function afterWrite() {
  state.changes++
  try {
    await refreshStatus()
  } catch {
    // the status is refreshed by the next event anyway
  }
}

/** Shows an error from a command, with its message (which names the field). */
export function showError(e: unknown) {
  const t = i18n.global.t
  if (isApiError(e)) {
    ElMessage({ type: 'error', message: `${t('error.' + e.code)}: ${e.message}`, duration: 6000, showClose: true, grouping: true })
  } else {
    ElMessage({ type: 'error', message: String(e), duration: 6000, showClose: true, grouping: true })
  }
}

let reported = false

/** The first screen has shown its data: tell the backend once (it measures startup). */
export function firstScreenShown() {
  if (reported) return
  reported = true
  api
    .firstScreen(performance.now())
    .then((ms) => {
      document.documentElement.dataset.firstScreenMs = String(ms)
    })
    .catch(() => {})
}

/** Shows the requests that became overdue or nearly due since the last look (each once per
 *  device), and asks the desktop for attention when the window is in the background. */
export async function checkReminders(open: (path: string) => void) {
  if (!state.status?.community) return
  try {
    const due = await api.reminders()
    if (!due.length) return
    const { title, message, path } = reminderText(i18n.global.t, due)
    ElNotification({ title, message, type: 'warning', duration: 15000, customClass: 'reminder', onClick: () => open(path) })
    if (!document.hasFocus()) await getCurrentWindow().requestUserAttention(UserAttentionType.Informational)
  } catch {
    // tried again at the next look
  }
}
