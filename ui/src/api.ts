// The front end's only way to the store: the Tauri commands and events, and every type they
// carry, generated from the Rust definitions into ./bindings.ts (written by
// `cargo test -p linli-app bindings`; never edited by hand). A Rust field renamed or removed
// fails `npm run typecheck` wherever a screen uses it.
import { commands, events, type ApiError, type SyncStatus } from './bindings'
import type { UnlistenFn } from '@tauri-apps/api/event'

export type * from './bindings'

/** Every command, as `api.name(args)`; a failed call throws an `ApiError`. */
export const api = commands

/** Whether a caught value is a command's error (`{ code, message }`). */
export function isApiError(e: unknown): e is ApiError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e
}

export function onSyncStatus(cb: (s: SyncStatus) => void): Promise<UnlistenFn> {
  return events.syncStatus.listen((e) => cb(e.payload))
}

export function onDocsChanged(cb: (received: number) => void): Promise<UnlistenFn> {
  return events.docsChanged.listen((e) => cb(e.payload))
}
