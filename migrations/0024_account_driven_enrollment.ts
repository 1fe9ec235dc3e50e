// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Account-driven enrollment (a person signs in with their Managed Apple Account):
// - account_enrollment_domains: which email domain lands in which tenant, the group a person
//   needs (null: ORCHARD_ACCOUNT_ENROLLMENT_REQUIRED_GROUP) and the kind of a device that
//   comes through account-driven Device Enrollment.
// - account_login_states: one sign-in in progress (OIDC state, PKCE verifier, nonce), keyed
//   by the hash of the state; single use, minutes long.
// - account_access_tokens: what the sign-in hands the device (the access-token of
//   apple-remotemanagement-user-login://authentication-results), kept only as a hash; single use.
// - account_enrollment_challenges: which person a profile's one-time SCEP challenge was made
//   for, so that Authenticate can put the person on the device.
// - devices: the person's subject, the kind of account-driven enrollment (user | device), when
//   they last signed in and since when they must sign in again.
// https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table account_enrollment_domains (
      domain text primary key check (domain ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'),
      tenant_id text references tenants (id) on delete cascade,
      required_group text check (length(required_group) between 1 and 256),
      device_kind text not null default 'work' check (device_kind in ('work', 'personal', 'function')),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`
    create table account_login_states (
      state_sha256 bytea primary key,
      version text not null check (version in ('mdm-byod', 'mdm-adde')),
      code_verifier text not null,
      nonce text not null,
      -- The Managed Apple Account the device signs in with, when the device names it (user-identifier).
      user_identifier text check (length(user_identifier) between 3 and 320),
      device_id text references devices (id) on delete cascade,
      expires_at timestamptz not null,
      used_at timestamptz,
      created_at timestamptz not null default now()
    )`.execute(db)
  await sql`
    create table account_access_tokens (
      token_sha256 bytea primary key,
      version text not null check (version in ('mdm-byod', 'mdm-adde')),
      tenant_id text references tenants (id) on delete cascade,
      subject text not null,
      email text not null,
      device_id text references devices (id) on delete cascade,
      expires_at timestamptz not null,
      used_at timestamptz,
      created_at timestamptz not null default now()
    )`.execute(db)
  await sql`
    create table account_enrollment_challenges (
      challenge_sha256 bytea primary key,
      version text not null check (version in ('mdm-byod', 'mdm-adde')),
      tenant_id text references tenants (id) on delete cascade,
      subject text not null,
      email text not null,
      device_kind text not null check (device_kind in ('work', 'personal', 'function')),
      created_at timestamptz not null default now()
    )`.execute(db)
  await sql`alter table devices add column account_subject text check (length(account_subject) between 1 and 512)`.execute(db)
  await sql`alter table devices add column account_enrollment text check (account_enrollment in ('user', 'device'))`.execute(db)
  await sql`alter table devices add column account_authenticated_at timestamptz`.execute(db)
  await sql`alter table devices add column account_reauth_required_at timestamptz`.execute(db)
  // Serves the list of a tenant's account-driven enrollments and the sweep of due re-authentications.
  await sql`create index devices_account_enrollment_idx on devices (tenant_id, account_authenticated_at) where account_enrollment is not null`.execute(db)
  // Serves pruning of expired login states and tokens.
  await sql`create index account_login_states_expires_idx on account_login_states (expires_at)`.execute(db)
  await sql`create index account_access_tokens_expires_idx on account_access_tokens (expires_at)`.execute(db)
}
