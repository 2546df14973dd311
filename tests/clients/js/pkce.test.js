// Velro's PKCE flow on /auth/v1 judged by the official JavaScript client (@supabase/auth-js) with
// `flowType: 'pkce'`: its sign-up, password recovery and magic link mail a `pkce_` link, the
// link lands with `?code=`, and `exchangeCodeForSession` turns the code into a session with the
// verifier the client kept. Against the real binary, started here on 127.0.0.1.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { GoTrueClient, AuthApiError } from '@supabase/auth-js'

const ROOT = resolve(import.meta.dirname, '..', '..', '..')
const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'purple monkey dishwasher 42'
const LANDING = 'http://localhost:3000/auth/callback'

// One server with auto-confirm (GoTrue's default here), one without.
let confirmed
let unconfirmed

const freePort = () =>
  new Promise((ok) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => ok(port))
    })
  })

async function startServer(extraEnv) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const dataDir = mkdtempSync(join(tmpdir(), 'velro-clients-js-pkce-'))
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
  started.base = base
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) return started
    } catch {}
    await new Promise((ok) => setTimeout(ok, 100))
  }
  throw new Error('velro did not start')
}

before(async () => {
  confirmed = await startServer({})
  unconfirmed = await startServer({ VELRO_MAILER_AUTOCONFIRM: 'false' })
})

after(() => {
  for (const started of [confirmed, unconfirmed]) {
    if (!started) continue
    started.kill('SIGTERM')
    rmSync(started.dataDir, { recursive: true, force: true })
  }
})

// The client keeps the verifier in its (in-memory) storage between the request and the exchange.
const client = (at) =>
  new GoTrueClient({
    url: `${at.base}/auth/v1`,
    autoRefreshToken: false,
    persistSession: false,
    flowType: 'pkce',
  })

const email = () => `js-pkce-${crypto.randomUUID()}@example.com`

// The link of the newest message to `address` in the development mailer's folder, once more
// than `earlier` have arrived.
async function mailedLink(at, address, earlier = 0) {
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
      return new URL(mine[mine.length - 1].match(/(http\S+\/verify\?\S+)/)[1])
    }
    await new Promise((ok) => setTimeout(ok, 50))
  }
  throw new Error(`no message for ${address}`)
}

// Follows the link as the browser would, up to the landing page: GoTrue's 303 with `?code=`.
// The link is on the configured external URL; this server is on a port of its own.
async function landingCode(at, link) {
  assert.ok(link.searchParams.get('token').startsWith('pkce_'), `${link}`)
  const response = await fetch(`${at.base}${link.pathname}${link.search}`, { redirect: 'manual' })
  assert.equal(response.status, 303)
  const landing = new URL(response.headers.get('location'))
  assert.equal(`${landing.origin}${landing.pathname}`, LANDING)
  assert.equal(landing.hash, '')
  const code = landing.searchParams.get('code')
  assert.ok(code)
  return code
}

test('signUp with flowType pkce: the confirmation link lands with a code exchangeCodeForSession takes once', async () => {
  const address = email()
  const auth = client(unconfirmed)
  const { data, error } = await auth.signUp({
    email: address,
    password: PASSWORD,
    options: { emailRedirectTo: LANDING },
  })
  assert.equal(error, null)
  assert.equal(data.session, null)
  const link = await mailedLink(unconfirmed, address)
  assert.equal(link.searchParams.get('type'), 'signup')
  const code = await landingCode(unconfirmed, link)

  const events = []
  auth.onAuthStateChange((event) => events.push(event))
  const exchanged = await auth.exchangeCodeForSession(code)
  assert.equal(exchanged.error, null)
  assert.equal(exchanged.data.user.email, address)
  assert.ok(exchanged.data.user.email_confirmed_at)
  assert.ok(exchanged.data.session.access_token)
  assert.ok(events.includes('SIGNED_IN'))
  const { data: me } = await auth.getUser()
  assert.equal(me.user.email, address)

  // The code is spent, whoever presents it.
  const again = client(unconfirmed)
  await again.signUp({ email: email(), password: PASSWORD }) // keeps a verifier of its own
  const reused = await again.exchangeCodeForSession(code)
  assert.ok(reused.error instanceof AuthApiError)
  assert.equal(reused.error.status, 404)
  assert.equal(reused.error.code, 'flow_state_not_found')
})

test('resetPasswordForEmail with flowType pkce: the code signs in as PASSWORD_RECOVERY and the password changes', async () => {
  const address = email()
  await client(confirmed).signUp({ email: address, password: PASSWORD })
  const auth = client(confirmed)
  const sent = await auth.resetPasswordForEmail(address, { redirectTo: LANDING })
  assert.equal(sent.error, null)
  const link = await mailedLink(confirmed, address)
  assert.equal(link.searchParams.get('type'), 'recovery')
  const code = await landingCode(confirmed, link)

  const events = []
  auth.onAuthStateChange((event) => events.push(event))
  const exchanged = await auth.exchangeCodeForSession(code)
  assert.equal(exchanged.error, null)
  assert.equal(exchanged.data.redirectType, 'recovery')
  assert.ok(events.includes('PASSWORD_RECOVERY'))
  const updated = await auth.updateUser({ password: NEW_PASSWORD })
  assert.equal(updated.error, null)
  const signedIn = await client(confirmed).signInWithPassword({ email: address, password: NEW_PASSWORD })
  assert.equal(signedIn.error, null)
})

test('signInWithOtp with flowType pkce: the magic link lands with a code; a foreign verifier is bad_code_verifier', async () => {
  const address = email()
  await client(confirmed).signUp({ email: address, password: PASSWORD })
  const auth = client(confirmed)
  const sent = await auth.signInWithOtp({ email: address, options: { emailRedirectTo: LANDING } })
  assert.equal(sent.error, null)
  const link = await mailedLink(confirmed, address)
  assert.equal(link.searchParams.get('type'), 'magiclink')
  const code = await landingCode(confirmed, link)

  // Another client's verifier was not the one the challenge was made from.
  const stranger = client(confirmed)
  // An address without an account: the same 200, and the client keeps a verifier of its own.
  assert.equal((await stranger.resetPasswordForEmail(email())).error, null)
  const refused = await stranger.exchangeCodeForSession(code)
  assert.ok(refused.error instanceof AuthApiError)
  assert.equal(refused.error.status, 400)
  assert.equal(refused.error.code, 'bad_code_verifier')

  // The code survives a wrong verifier, as on GoTrue.
  const exchanged = await auth.exchangeCodeForSession(code)
  assert.equal(exchanged.error, null)
  assert.equal(exchanged.data.user.email, address)
  const { data: me } = await auth.getUser()
  assert.equal(me.user.email, address)
})
