import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import ElementPlus from 'element-plus'
import SyncBadge from '../src/components/SyncBadge.vue'
import { i18n } from '../src/i18n'
import { state } from '../src/state'

describe('the sync badge', () => {
  it('shows the status pushed by the backend, and updates with it', async () => {
    i18n.global.locale.value = 'zh-CN'
    state.now = Date.parse('2026-03-05T01:30:00Z')
    state.sync = {
      phase: 'offline', relay: 'http://127.0.0.1:1', last_synced_ms: null, pending: 4,
      last_error: 'connection refused', failures: 2, next_attempt_ms: null, last_received: 0, last_sent: 0, live: false,
    }
    const w = mount(SyncBadge, { global: { plugins: [i18n, ElementPlus] } })
    expect(w.get('[data-test=sync-status]').text()).toContain('离线，稍后重试 · 4 项待同步')
    expect(w.get('[data-test=sync-status]').attributes('title')).toBe('connection refused')
    state.sync = { ...state.sync, phase: 'synced', pending: 0, last_synced_ms: state.now - 60000, last_error: null }
    await w.vm.$nextTick()
    expect(w.get('[data-test=sync-status]').text()).toContain('已同步（1 分钟前）')
    expect(w.get('[data-test=sync-status]').classes()).toContain('ok')
  })
})
