// Velro's /auth/v1 judged by the official JavaScript client (@supabase/auth-js, npm): its own
// calls, unchanged, against the real binary (started here on 127.0.0.1 with its own data folder).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
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
// A second server with GoTrue's MAILER_AUTOCONFIRM=false: sign-up mails a confirmation.
let unconfirmed

const freePort = () =>
  new Promise((ok) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => ok(port))
    })
  })

before(async () => {
  server = await startServer({})
  base = server.base
  unconfirmed = await startServer({ VELRO_MAILER_AUTOCONFIRM: 'false' })
})

async function startServer(extraEnv) {
  const port = await freePort()
  const serverBase = `http://127.0.0.1:${port}`
  const dataDir = mkdtempSync(join(tmpdir(), 'velro-clients-js-'))
  // The outer environment's VELRO_* settings (a developer's, or VELRO_TEST_BIN) stay out.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VELRO_')))
  const started = spawn(process.env.VELRO_TEST_BIN ?? join(ROOT, 'target', 'debug', 'velro'), ['serve'], {
    env: {
      ...env,
      VELRO_BIND: `127.0.0.1:${port}`,
      VELRO_DATA_DIR: dataDir,
      VELRO_JWT_SECRET: 'super-secret-jwt-token-with-at-least-32-characters-long',
      VELRO_ARGON2_MEMORY_KIB: '64',
      VELRO_ARGON2_ITERATIONS: '1',
      VELRO_LOG_LEVEL: 'warn',
      VELRO_RATE_LIMITS: 'off',
      ...extraEnv,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  started.dataDir = dataDir
  started.base = serverBase
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${serverBase}/health`)).ok) return started
    } catch {}
    await new Promise((ok) => setTimeout(ok, 100))
  }
  throw new Error('velro did not start')
}

after(() => {
  for (const started of [server, unconfirmed]) {
    if (!started) continue
    started.kill('SIGTERM')
    rmSync(started.dataDir, { recursive: true, force: true })
  }
})

const client = (at = server) =>
  new GoTrueClient({ url: `${at.base}/auth/v1`, autoRefreshToken: false, persistSession: false })
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
  // Every reason that applies, as GoTrue lists them: 'short' is also a common password.
  assert.deepEqual(weak.error.reasons, ['length', 'pwned'])
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

// The link and the code of the newest message to `address` in the development mailer's folder,
// once more than `earlier` have arrived.
async function mailed(at, address, earlier = 0) {
  const folder = join(at.dataDir, 'mail')
  for (let i = 0; i < 200; i++) {
    const mine = existsSync(folder)
      ? readdirSync(folder)
          .filter((name) => name.endsWith('.eml'))
          .sort()
          .map((name) => readFileSync(join(folder, name), 'utf8'))
          .filter((text) => text.startsWith(`To: ${address}\n`))
      : []
    if (mine.length > earlier) {
      const message = mine[mine.length - 1]
      return {
        link: new URL(message.match(/(http\S+\/verify\?\S+)/)[1]),
        code: message.match(/code: (\d{6})/)[1],
      }
    }
    await new Promise((ok) => setTimeout(ok, 50))
  }
  throw new Error(`no message for ${address}`)
}

test('sign-up without auto-confirm: the bare user, email_not_confirmed, resend, verifyOtp', async () => {
  const address = email()
  const auth = client(unconfirmed)
  const { data, error } = await auth.signUp({
    email: address,
    password: PASSWORD,
    options: { emailRedirectTo: 'http://localhost:3000/welcome' },
  })
  assert.equal(error, null)
  assert.equal(data.session, null)
  assert.equal(data.user.email, address)
  assert.equal(data.user.email_confirmed_at, undefined)
  assert.equal(data.user.identities.length, 1)
  const { link, code } = await mailed(unconfirmed, address)
  assert.equal(link.searchParams.get('type'), 'signup')
  assert.equal(link.searchParams.get('redirect_to'), 'http://localhost:3000/welcome')

  const refused = await client(unconfirmed).signInWithPassword({ email: address, password: PASSWORD })
  assert.ok(refused.error instanceof AuthApiError)
  assert.equal(refused.error.code, 'email_not_confirmed')
  assert.equal(refused.error.message, 'Email not confirmed')
  const tooSoon = await auth.resend({ type: 'signup', email: address })
  assert.equal(tooSoon.error.status, 429)
  assert.equal(tooSoon.error.code, 'over_email_send_rate_limit')
  const unknown = await auth.resend({ type: 'signup', email: email() })
  assert.equal(unknown.error, null)

  const verified = await auth.verifyOtp({ email: address, token: code, type: 'signup' })
  assert.equal(verified.error, null)
  assert.ok(verified.data.session.access_token)
  assert.ok(verified.data.user.email_confirmed_at)
  const signedIn = await client(unconfirmed).signInWithPassword({ email: address, password: PASSWORD })
  assert.equal(signedIn.error, null)

  // Registered and confirmed: a stand-in user with no identities (how apps detect it).
  const again = await client(unconfirmed).signUp({ email: address, password: PASSWORD })
  assert.equal(again.error, null)
  assert.deepEqual(again.data.user.identities, [])
  assert.notEqual(again.data.user.id, data.user.id)
})

test('updateUser email change waits for both addresses: verifyOtp email_change with each link', async () => {
  const [old, next] = [email(), email()]
  const auth = client()
  await auth.signUp({ email: old, password: PASSWORD })
  const { data: session } = await auth.signInWithPassword({ email: old, password: PASSWORD })
  const token = session.session.access_token
  const pending = await auth.updateUser({ email: next }, {})
  assert.equal(pending.error, null)
  assert.equal(pending.data.user.email, old)
  assert.equal(pending.data.user.new_email, next)
  assert.ok(pending.data.user.email_change_sent_at)
  const shown = await client().getUser(token)
  assert.equal(shown.data.user.new_email, next)

  // GoTrue's secure email change: one mail to each address, each with its own link.
  const toNext = await mailed(server, next)
  const toOld = await mailed(server, old)
  assert.equal(toNext.link.searchParams.get('type'), 'email_change')
  assert.equal(toOld.link.searchParams.get('type'), 'email_change')
  const first = await client().verifyOtp({ token_hash: toOld.link.searchParams.get('token'), type: 'email_change' })
  assert.equal(first.error, null)
  assert.equal(first.data.session, null)
  assert.equal(first.data.user, null)
  assert.equal((await client().getUser(token)).data.user.email, old)
  const again = await client().verifyOtp({ token_hash: toOld.link.searchParams.get('token'), type: 'email_change' })
  assert.equal(again.error.code, 'otp_expired')

  const changed = await client().verifyOtp({ token_hash: toNext.link.searchParams.get('token'), type: 'email_change' })
  assert.equal(changed.error, null)
  assert.ok(changed.data.session.access_token)
  assert.equal(changed.data.user.email, next)
  const current = await client().getUser(token)
  assert.equal(current.data.user.email, next)
  assert.equal(current.data.user.new_email, undefined)
})

test('inviteUserByEmail then verifyOtp invite; generateLink for each type', async () => {
  const admin = await adminApi()
  const address = email()
  const invited = await admin.inviteUserByEmail(address, { data: { full_name: 'Grace' } })
  assert.equal(invited.error, null)
  assert.ok(invited.data.user.invited_at)
  const { link, code } = await mailed(server, address)
  assert.equal(link.searchParams.get('type'), 'invite')
  const accepted = await client().verifyOtp({ email: address, token: code, type: 'invite' })
  assert.equal(accepted.error, null)
  assert.ok(accepted.data.session.access_token)
  const twice = await admin.inviteUserByEmail(address)
  assert.equal(twice.error.code, 'email_exists')

  const other = email()
  const signup = await admin.generateLink({ type: 'signup', email: other, password: PASSWORD })
  assert.equal(signup.error, null)
  const props = signup.data.properties
  assert.equal(props.verification_type, 'signup')
  assert.equal(props.redirect_to, 'http://localhost:3000')
  assert.ok(props.action_link.includes('/auth/v1/verify?'))
  assert.equal(signup.data.user.email, other)
  const confirmed = await client().verifyOtp({ token_hash: props.hashed_token, type: 'signup' })
  assert.equal(confirmed.error, null)

  for (const type of ['magiclink', 'recovery']) {
    const made = await admin.generateLink({ type, email: other })
    assert.equal(made.data.properties.verification_type, type)
    const used = await client().verifyOtp({ email: other, token: made.data.properties.email_otp, type })
    assert.equal(used.error, null)
  }
  const moved = email()
  const change = await admin.generateLink({ type: 'email_change_new', email: other, newEmail: moved })
  assert.equal(change.error, null)
  assert.equal(change.data.user.new_email, moved)
  const current = await admin.generateLink({ type: 'email_change_current', email: other, newEmail: moved })
  assert.equal(current.error, null)
  assert.equal(current.data.properties.verification_type, 'email_change_current')
  const half = await client().verifyOtp({
    email: moved,
    token: change.data.properties.email_otp,
    type: 'email_change',
  })
  assert.equal(half.error, null)
  assert.equal(half.data.session, null)
  const done = await client().verifyOtp({
    email: other,
    token: current.data.properties.email_otp,
    type: 'email_change',
  })
  assert.equal(done.error, null)
  assert.equal(done.data.user.email, moved)
  const missing = await admin.generateLink({ type: 'recovery', email: email() })
  assert.equal(missing.error.status, 404)
})
