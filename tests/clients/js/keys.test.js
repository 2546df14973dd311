// A Supabase project's asymmetric keys (VELRO_JWT_KEYS: ES256 signing, RS256 kept for
// verification) judged by @supabase/auth-js: getClaims() verifies Velro's tokens itself with the
// key /.well-known/jwks.json publishes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { GoTrueClient } from '@supabase/auth-js'

const ROOT = resolve(import.meta.dirname, '..', '..', '..')
const PASSWORD = 'correct horse battery staple'
const fixture = JSON.parse(
  readFileSync(join(ROOT, 'crates', 'velro', 'tests', 'fixtures', 'test-jwks.json'), 'utf8'),
)

let server
let base

const freePort = () =>
  new Promise((ok) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => ok(port))
    })
  })

before(async () => {
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  const dataDir = mkdtempSync(join(tmpdir(), 'velro-clients-js-keys-'))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VELRO_')))
  const keys = [
    { ...fixture.ec, key_ops: ['sign', 'verify'] },
    { ...fixture.rsa, key_ops: ['verify'] },
  ]
  server = spawn(process.env.VELRO_TEST_BIN ?? join(ROOT, 'target', 'debug', 'velro'), ['serve'], {
    env: {
      ...env,
      VELRO_BIND: `127.0.0.1:${port}`,
      VELRO_DATA_DIR: dataDir,
      VELRO_JWT_SECRET: 'super-secret-jwt-token-with-at-least-32-characters-long',
      VELRO_JWT_KEYS: JSON.stringify(keys),
      VELRO_ARGON2_MEMORY_KIB: '64',
      VELRO_ARGON2_ITERATIONS: '1',
      VELRO_LOG_LEVEL: 'warn',
      VELRO_RATE_LIMITS: 'off',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  server.dataDir = dataDir
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return
    } catch {}
    await new Promise((ok) => setTimeout(ok, 100))
  }
  throw new Error('velro did not start')
})

after(() => {
  server.kill('SIGTERM')
  rmSync(server.dataDir, { recursive: true, force: true })
})

const client = () =>
  new GoTrueClient({ url: `${base}/auth/v1`, autoRefreshToken: false, persistSession: false })
const email = () => `js-keys-${crypto.randomUUID()}@example.com`
const header = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString())

const signedIn = async () => {
  const auth = client()
  const address = email()
  const { error } = await auth.signUp({ email: address, password: PASSWORD })
  assert.equal(error, null)
  const { data } = await auth.signInWithPassword({ email: address, password: PASSWORD })
  return { auth, address, token: data.session.access_token }
}

test('getClaims verifies ES256 tokens with the published key', async () => {
  const { auth, address, token } = await signedIn()
  assert.equal(header(token).alg, 'ES256')
  assert.equal(header(token).kid, 'test-ec-1')
  const { data, error } = await auth.getClaims()
  assert.equal(error, null)
  assert.equal(data.claims.email, address)
  assert.equal(data.header.kid, 'test-ec-1')

  // Proof that the check is local, through the JWKS: once the session is ended the server refuses
  // the token, but its signature still verifies with the published key.
  const other = await signedIn()
  await other.auth.signOut()
  const refused = await auth.getUser(other.token)
  assert.ok(refused.error)
  const local = await auth.getClaims(other.token)
  assert.equal(local.error, null)
  assert.equal(local.data.claims.email, other.address)

  const [head, payload, signature] = token.split('.')
  const forged = [head, payload, signature.split('').reverse().join('')].join('.')
  const tampered = await auth.getClaims(forged)
  assert.ok(tampered.error)
})
