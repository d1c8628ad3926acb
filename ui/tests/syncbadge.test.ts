import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import ElementPlus from 'element-plus'
import SyncBadge from '../src/components/SyncBadge.vue'
import { i18n } from '../src/i18n'
import { showSync, state } from '../src/state'

describe('the sync badge', () => {
  it('shows the status pushed by the backend, and updates with it', async () => {
    i18n.global.locale.value = 'zh-CN'
    state.now = Date.parse('2026-03-05T01:30:00Z')
    state.sync = {
      phase: 'offline', relay: 'http://127.0.0.1:1', last_synced_ms: null, pending: 4,
      last_error: 'connection refused', failures: 2, next_attempt_ms: null, last_received: 0, last_sent: 0, live: false, set_aside: 0, rev: 1,
    }
    const w = mount(SyncBadge, { global: { plugins: [i18n, ElementPlus] } })
    expect(w.get('[data-test=sync-status]').text()).toContain('离线，稍后重试 · 4 项待同步')
    expect(w.get('[data-test=sync-status]').attributes('title')).toBe('connection refused')
    state.sync = { ...state.sync, phase: 'synced', pending: 0, last_synced_ms: state.now - 60000, last_error: null }
    await w.vm.$nextTick()
    expect(w.get('[data-test=sync-status]').text()).toContain('已同步（1 分钟前）')
    expect(w.get('[data-test=sync-status]').classes()).toContain('ok')
  })

  it('keeps the status read last, whatever order answers and events arrive in', async () => {
    i18n.global.locale.value = 'zh-CN'
    state.now = Date.parse('2026-03-05T01:30:00Z')
    const base = {
      phase: 'synced' as const, relay: 'http://127.0.0.1:1', last_synced_ms: state.now, last_error: null,
      failures: 0, next_attempt_ms: null, last_received: 0, last_sent: 1, set_aside: 0,
    }
    state.sync = null
    const w = mount(SyncBadge, { global: { plugins: [i18n, ElementPlus] } })
    // The event after the change was sent (read 8th) comes before the answer to a command
    // read while the change still waited (7th): the answer is older and is not shown.
    showSync({ ...base, pending: 0, live: true, rev: 8 })
    showSync({ ...base, pending: 1, live: true, rev: 7 })
    await w.vm.$nextTick()
    expect(w.get('[data-test=sync-status]').text()).toContain('已连接，实时同步')
    showSync({ ...base, pending: 2, live: true, rev: 9 })
    await w.vm.$nextTick()
    expect(w.get('[data-test=sync-status]').text()).toContain('2 项待同步')
  })
})
