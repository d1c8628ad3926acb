import { describe, expect, it } from 'vitest'
import { en, zh } from '../src/i18n'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

type Tree = { [k: string]: string | Tree }

function keys(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([k, v]) => (typeof v === 'string' ? [prefix + k] : keys(v, prefix + k + '.')))
}

function lookup(tree: Tree, key: string): unknown {
  return key.split('.').reduce<unknown>((t, k) => (t && typeof t === 'object' ? (t as Tree)[k] : undefined), tree)
}

describe('translations', () => {
  it('English has exactly the keys of Chinese, none empty', () => {
    expect(keys(en as unknown as Tree).sort()).toEqual(keys(zh as unknown as Tree).sort())
    for (const k of keys(en as unknown as Tree)) expect(lookup(en as unknown as Tree, k), k).not.toBe('')
  })

  it('every literal key the screens use exists', () => {
    const dir = join(__dirname, '..', 'src')
    const files = [...readdirSync(join(dir, 'views')).map((f) => join(dir, 'views', f)), ...readdirSync(join(dir, 'components')).map((f) => join(dir, 'components', f)), join(dir, 'App.vue'), join(dir, 'logic.ts'), join(dir, 'state.ts')]
    const used = new Set<string>()
    for (const f of files) {
      for (const m of readFileSync(f, 'utf8').matchAll(/\bt\('([a-zA-Z]+\.[a-zA-Z.]+)'/g)) used.add(m[1]!)
    }
    expect(used.size).toBeGreaterThan(50)
    for (const k of used) {
      expect(typeof lookup(zh as unknown as Tree, k), k).toBe('string')
    }
  })

  it('names every request state, role, tag and error code the backend sends', () => {
    for (const s of ['reported', 'accepted', 'dispatched', 'in_progress', 'done', 'verified', 'closed', 'rejected', 'returned', 'reopened', 'conflict']) {
      expect(zh.state[s as keyof typeof zh.state], s).toBeTruthy()
    }
    for (const c of ['no_community', 'invalid', 'forbidden', 'not_found', 'conflict', 'step', 'offline', 'refused', 'store', 'sync', 'invite', 'io', 'has_community']) {
      expect(en.error[c as keyof typeof en.error], c).toBeTruthy()
    }
  })
})
