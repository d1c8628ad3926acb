// Drafts of forms: every change to a form is kept in the store as it is typed (see the
// backend's drafts), so that closing the app, a crash or a flat battery loses nothing typed;
// the draft is read back when the form is shown again, and forgotten once the form is saved
// or the person discards it.
import { ref, watch, type Ref } from 'vue'
import { api } from './api'
import { DraftSaver, fromDraft } from './logic'
import { showError } from './state'

export interface Draft {
  /** The form shows a draft read back from the store (not yet saved). */
  restored: Ref<boolean>
  /** The form was saved: forget its draft and blank the form. */
  done: () => Promise<void>
  /** The person throws the draft away: forget it and blank the form. */
  discard: () => Promise<void>
}

/**
 * Keeps `form` (a reactive object) as the draft `name` about `subject()` (a household, a
 * request …; `''` for a form about nothing yet, `null` while there is no subject). The form
 * is blank (`blank()`) or its draft whenever the subject changes.
 */
export function useDraft<T extends object>(name: string, subject: () => string | null, form: T, blank: () => T): Draft {
  const restored = ref(false)
  let current: string | null = null
  let saver: DraftSaver | null = null
  // Changes made while a draft is read back are not typing.
  let reading = false
  const blankJson = () => JSON.stringify(blank())

  async function show(s: string | null) {
    current = s
    restored.value = false
    reading = true
    Object.assign(form, blank())
    saver = null
    if (s === null) {
      reading = false
      return
    }
    const mine = new DraftSaver(
      (json) => (json === null ? api.clearDraft(name, s) : api.saveDraft(name, s, JSON.parse(json))),
      showError,
    )
    try {
      const kept = fromDraft(blank(), await api.draft(name, s))
      if (current !== s) return
      if (kept) {
        Object.assign(form, kept)
        restored.value = true
      }
      mine.known(kept ? JSON.stringify(form) : null)
    } catch (e) {
      showError(e)
    } finally {
      if (current === s) {
        saver = mine
        reading = false
      }
    }
  }

  watch(subject, (s) => void show(s), { immediate: true })
  watch(
    () => JSON.stringify(form),
    (json) => {
      if (reading || !saver) return
      void saver.set(json === blankJson() ? null : json)
    },
  )

  async function forget() {
    restored.value = false
    Object.assign(form, blank())
    if (saver) await saver.set(null)
  }
  return { restored, done: forget, discard: forget }
}
