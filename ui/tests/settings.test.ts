import { afterEach, describe, expect, it } from 'vitest'
import { mount, flushPromises } from '@vue/test-utils'
import ElementPlus from 'element-plus'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import Settings from '../src/views/Settings.vue'
import { i18n } from '../src/i18n'
import { state } from '../src/state'
import type { SetAside } from '../src/api'

const aside: SetAside[] = [
  { peer: 'relay http://127.0.0.1:1', seq: 7, scope: '*', sender: 'ab12cd34ef56'.padEnd(64, '0'), received_ms: Date.parse('2026-12-07T02:00:00Z'), reason: 'sealed data for scope * does not open', bytes: 64, whole: true },
  { peer: 'relay http://127.0.0.1:1', seq: 9, scope: 'G01', sender: '99887766'.padEnd(64, '1'), received_ms: Date.parse('2026-12-07T03:00:00Z'), reason: 'document hh-1: ...', bytes: 900, whole: false },
]

function backend(calls: string[]) {
  mockIPC((cmd) => {
    calls.push(cmd)
    switch (cmd) {
      case 'peers_status': return { ticket: null, known: [], nearby: [] }
      case 'set_aside': return calls.includes('drop_set_aside') ? [] : aside
      case 'drop_set_aside': return 2
      case 'sync_status': return { ...state.sync, set_aside: 0, rev: 99 }
      default: return null
    }
  })
}

function asRole(code: 'staff' | 'owners') {
  state.status = {
    community: null, user: '王芳', device: 'device-1', data_dir: '/tmp/x', households: 0,
    role: { code, grids: [], may_reveal: code === 'staff', may_edit_roster: code === 'staff', may_manage: code === 'staff', may_publish: true },
  } as unknown as typeof state.status
}

afterEach(() => clearMocks())

describe('what was received and could not be read', () => {
  it('is listed with its sender for everyone, and staff have the relay drop it', async () => {
    i18n.global.locale.value = 'zh-CN'
    const calls: string[] = []
    backend(calls)
    asRole('staff')
    const w = mount(Settings, { global: { plugins: [i18n, ElementPlus] } })
    await flushPromises()
    const rows = w.findAll('[data-test=set-aside-row]')
    expect(rows).toHaveLength(2)
    expect(rows[0]!.text()).toContain('设备 ab12cd34 发送了无法解读的数据（全社区')
    expect(rows[1]!.text()).toContain('G01')
    expect(w.find('[data-test=drop-set-aside]').exists()).toBe(true)
  })

  it('offers no drop to an owners\u2019 committee device', async () => {
    i18n.global.locale.value = 'zh-CN'
    backend([])
    asRole('owners')
    const w = mount(Settings, { global: { plugins: [i18n, ElementPlus] } })
    await flushPromises()
    expect(w.findAll('[data-test=set-aside-row]')).toHaveLength(2)
    expect(w.find('[data-test=drop-set-aside]').exists()).toBe(false)
  })
})
