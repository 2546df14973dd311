// Velro's /auth/v1 judged by the official JavaScript client (@supabase/auth-js, npm): its own
// calls, unchanged, against the real binary (started here on 127.0.0.1 with its own data folder).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  GoTrueClient,
  AuthApiError,
  AuthSessionMissingError,
  AuthWeakPasswordError,
} from '@supabase/auth-js'

const ROOT = resolve(import.meta.dirname, '..', '..', '..')
const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'purple monkey dishwasher 42'

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
  const dataDir = mkdtempSync(join(tmpdir(), 'velro-clients-js-'))
  // The outer environment's VELRO_* settings (a developer's, or VELRO_TEST_BIN) stay out.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VELRO_')))
  server = spawn(process.env.VELRO_TEST_BIN ?? join(ROOT, 'target', 'debug', 'velro'), ['serve'], {
    env: {
      ...env,
      VELRO_BIND: `127.0.0.1:${port}`,
      VELRO_DATA_DIR: dataDir,
      VELRO_JWT_SECRET: 'super-secret-jwt-token-with-at-least-32-characters-long',
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
const email = () => `js-${crypto.randomUUID()}@example.com`

test('sign-up returns a session and a confirmed user', async () => {
  const address = email()
  const { data, error } = await client().signUp({
    email: address,
    password: PASSWORD,
    options: { data: { full_name: 'Ada' } },
  })
  assert.equal(error, null)
  assert.ok(data.session.access_token)
  assert.equal(data.session.expires_in, 3600)
  assert.equal(data.user.email, address)
  assert.equal(data.user.role, 'authenticated')
  assert.ok(data.user.email_confirmed_at)
  assert.equal(typeof data.user.phone, 'string')
  assert.equal(data.user.user_metadata.full_name, 'Ada')
  assert.equal(data.user.identities.length, 1)
})

test('a second sign-up is user_already_exists and a short password is a weak password', async () => {
  const address = email()
  await client().signUp({ email: address, password: PASSWORD })
  const again = await client().signUp({ email: address, password: PASSWORD })
  assert.ok(again.error instanceof AuthApiError)
  assert.equal(again.error.code, 'user_already_exists')
  assert.match(again.error.message, /^User already registered/)
  assert.equal(again.data.user, null)
  const weak = await client().signUp({ email: email(), password: 'short' })
  assert.ok(weak.error instanceof AuthWeakPasswordError)
  assert.deepEqual(weak.error.reasons, ['length'])
})

test('sign-in, get user, get claims, refresh', async () => {
  const address = email()
  await client().signUp({ email: address, password: PASSWORD })
  const auth = client()
  const signedIn = await auth.signInWithPassword({ email: address, password: PASSWORD })
  assert.equal(signedIn.error, null)
  // Only a stored password below the policy is reported.
  assert.equal(signedIn.data.weakPassword, undefined)
  const user = await auth.getUser()
  assert.equal(user.data.user.id, signedIn.data.user.id)
  const claims = await auth.getClaims()
  assert.equal(claims.error, null)
  assert.equal(claims.data.claims.sub, signedIn.data.user.id)
  assert.equal(claims.data.claims.role, 'authenticated')
  const refreshed = await auth.refreshSession()
  assert.equal(refreshed.error, null)
  assert.notEqual(refreshed.data.session.refresh_token, signedIn.data.session.refresh_token)
  assert.equal((await auth.getUser()).data.user.email, address)
})

test('wrong credentials are invalid_credentials', async () => {
  const { data, error } = await client().signInWithPassword({ email: email(), password: PASSWORD })
  assert.equal(data.session, null)
  assert.ok(error instanceof AuthApiError)
  assert.equal(error.status, 400)
  assert.equal(error.code, 'invalid_credentials')
  assert.equal(error.message, 'Invalid login credentials')
})

test('update user then sign out ends the session', async () => {
  const address = email()
  const auth = client()
  const { data } = await auth.signUp({ email: address, password: PASSWORD })
  const updated = await auth.updateUser({ password: NEW_PASSWORD, data: { full_name: 'Grace' } })
  assert.equal(updated.error, null)
  assert.equal(updated.data.user.user_metadata.full_name, 'Grace')
  const token = (await auth.getSession()).data.session.access_token
  assert.equal((await auth.signOut()).error, null)
  assert.equal((await auth.getSession()).data.session, null)
  const after = await client().getUser(token)
  // auth-js turns GoTrue's 403 session_not_found into its signed-out error.
  assert.ok(after.error instanceof AuthSessionMissingError)
  const again = await client().signInWithPassword({ email: address, password: NEW_PASSWORD })
  assert.equal(again.data.user.id, data.user.id)
})

test('the admin API takes a role-only service_role key and lists users newest first', async () => {
  const { data } = await client().signUp({ email: email(), password: PASSWORD })
  const serviceRole = await signHs256({ role: 'service_role' })
  const admin = new GoTrueClient({
    url: `${base}/auth/v1`,
    headers: { Authorization: `Bearer ${serviceRole}` },
    autoRefreshToken: false,
    persistSession: false,
  }).admin
  const byId = await admin.getUserById(data.user.id)
  assert.equal(byId.error, null)
  assert.equal(byId.data.user.email, data.user.email)
  const listed = await admin.listUsers()
  assert.equal(listed.error, null)
  assert.equal(listed.data.users[0].id, data.user.id)
  assert.equal(listed.data.lastPage, 1)
  assert.ok(listed.data.total >= 1)
})

// A JWT signed with the project's secret, as a Supabase service_role key is made.
async function signHs256(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode('super-secret-jwt-token-with-at-least-32-characters-long'),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  )
  const signature = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(unsigned))
  return `${unsigned}.${Buffer.from(signature).toString('base64url')}`
}

async function adminApi() {
  const serviceRole = await signHs256({ role: 'service_role' })
  return new GoTrueClient({
    url: `${base}/auth/v1`,
    headers: { Authorization: `Bearer ${serviceRole}` },
    autoRefreshToken: false,
    persistSession: false,
  }).admin
}

test('sign-up data and updateUser data are kept as free user metadata', async () => {
  const auth = client()
  const signedUp = await auth.signUp({
    email: email(),
    password: PASSWORD,
    options: { data: { plan: 'pro', prefs: { theme: 'dark' } } },
  })
  assert.equal(signedUp.error, null)
  assert.equal(signedUp.data.user.user_metadata.plan, 'pro')
  assert.deepEqual(signedUp.data.user.user_metadata.prefs, { theme: 'dark' })
  const updated = await auth.updateUser({ data: { plan: null, seats: 3 } })
  assert.equal(updated.error, null)
  assert.equal(updated.data.user.user_metadata.plan, undefined)
  assert.equal(updated.data.user.user_metadata.seats, 3)
})

test('the admin API creates, updates, bans and deletes users', async () => {
  const admin = await adminApi()
  const address = email()
  const userMetadata = { plan: 'pro' }
  const created = await admin.createUser({
    email: address,
    password: PASSWORD,
    user_metadata: userMetadata,
    app_metadata: { role: 'creator' },
  })
  assert.equal(created.error, null)
  assert.deepEqual(created.data.user.user_metadata, userMetadata)
  assert.equal(created.data.user.app_metadata.role, 'creator')
  const duplicate = await admin.createUser({ email: address })
  assert.equal(duplicate.error.code, 'email_exists')
  assert.equal(duplicate.error.status, 422)

  const updated = await admin.updateUserById(created.data.user.id, {
    user_metadata: { plan: null, seats: 3 },
  })
  assert.equal(updated.error, null)
  assert.deepEqual(updated.data.user.user_metadata, { seats: 3 })

  const auth = client()
  assert.equal((await auth.signInWithPassword({ email: address, password: PASSWORD })).error, null)
  const banned = await admin.updateUserById(created.data.user.id, { ban_duration: '24h' })
  assert.ok(banned.data.user.banned_until)
  const refused = await client().signInWithPassword({ email: address, password: PASSWORD })
  assert.equal(refused.error.code, 'user_banned')
  assert.equal(refused.error.status, 400)
  await admin.updateUserById(created.data.user.id, { ban_duration: 'none' })
  assert.equal((await client().signInWithPassword({ email: address, password: PASSWORD })).error, null)

  const soft = await admin.deleteUser(created.data.user.id, true)
  assert.equal(soft.error, null)
  const kept = await admin.getUserById(created.data.user.id)
  assert.ok(kept.data.user.deleted_at)
  assert.notEqual(kept.data.user.email, address)
  const other = await admin.createUser({ email: email() })
  assert.equal((await admin.deleteUser(other.data.user.id)).error, null)
  const gone = await admin.getUserById(other.data.user.id)
  assert.equal(gone.error.code, 'user_not_found')
  assert.equal(gone.error.status, 404)
})

test('the admin list pages with perPage', async () => {
  const admin = await adminApi()
  for (let i = 0; i < 3; i++) await admin.createUser({ email: email() })
  const first = await admin.listUsers({ page: 1, perPage: 2 })
  const second = await admin.listUsers({ page: 2, perPage: 2 })
  assert.equal(first.data.users.length, 2)
  assert.equal(second.data.users.length, 2)
  assert.equal(first.data.nextPage, 2)
  const ids = new Set(first.data.users.map((u) => u.id))
  assert.ok(second.data.users.every((u) => !ids.has(u.id)))
})
