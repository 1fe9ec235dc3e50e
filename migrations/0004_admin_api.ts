// Frozen: never edit a migration that has landed; add a new numbered one instead.
// The admin API: API keys with scopes, webhook subscriptions with a durable delivery
// outbox, and the indexes behind the API's lists (devices, queues, history, retention).
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // A key is `orchard_<id>_<secret>`; only the SHA-256 of the whole key is kept.
  await sql`
    create table api_keys (
      id text primary key check (id ~ '^[a-z0-9]{12}$'),
      name text not null check (length(name) between 1 and 200),
      scopes text[] not null check (cardinality(scopes) between 1 and 3 and scopes <@ array['read', 'write', 'admin']::text[]),
      key_sha256 bytea not null check (length(key_sha256) = 32),
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      expires_at timestamptz,
      revoked_at timestamptz
    )`.execute(db)
  // Serves the lookup on every authenticated request.
  await sql`create unique index api_keys_key_sha256_key on api_keys (key_sha256)`.execute(db)

  await sql`
    create table webhooks (
      id text primary key check (length(id) between 1 and 100),
      url text not null check (url ~ '^https?://' and length(url) <= 2000),
      -- The HMAC-SHA256 signing secret, sealed with the configured master key.
      secret_sealed bytea not null,
      event_types text[] not null check (cardinality(event_types) >= 1),
      enabled boolean not null default true,
      description text check (length(description) <= 500),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)

  // The outbox: one row per (event, subscribed webhook), written when the event happens and
  // retried with backoff until the receiver answers 2xx or the retry window closes.
  await sql`
    create table webhook_deliveries (
      id bigint generated always as identity primary key,
      webhook_id text not null references webhooks (id) on delete cascade,
      event_id text not null,
      event_type text not null check (event_type ~ '^[a-z_.]{1,100}$'),
      payload jsonb not null,
      status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
      attempts integer not null default 0 check (attempts >= 0),
      next_attempt_at timestamptz not null default now(),
      last_attempt_at timestamptz,
      last_status_code integer,
      last_error text,
      delivered_at timestamptz,
      created_at timestamptz not null default now(),
      unique (webhook_id, event_id)
    )`.execute(db)
  // Serves the delivery worker: pending deliveries whose next attempt is due.
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db)
  // Serves the delivery log of one webhook, newest first, and pruning of old delivered rows.
  await sql`create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, id desc)`.execute(db)
  await sql`create index webhook_deliveries_finished_idx on webhook_deliveries (created_at) where status <> 'pending'`.execute(db)

  // Device list: the default order (created_at, id), sort by serial number, filters by model and OS.
  await sql`create index devices_created_at_idx on devices (created_at, id)`.execute(db)
  await sql`create index devices_serial_sort_idx on devices (serial_number, id)`.execute(db)
  // The model filter matches ProductName (iPad13,1) or Model (the part number).
  await sql`create index devices_product_name_idx on devices (product_name, id)`.execute(db)
  await sql`create index devices_model_idx on devices (model, id)`.execute(db)
  await sql`create index devices_os_version_idx on devices (os_version, id)`.execute(db)
  // Device list sorted or filtered by last check-in (the device channel carries it).
  await sql`create index enrollments_device_last_seen_idx on enrollments (last_seen_at, id) where channel = 'device'`.execute(db)

  // A channel's queue and history, newest first.
  await sql`create index command_targets_enrollment_seq_idx on command_targets (enrollment_id, seq)`.execute(db)
  // The targets of one command, paged by enrollment ID (replaces the single-column index).
  await sql`create index command_targets_command_enrollment_idx on command_targets (command_uuid, enrollment_id)`.execute(db)
  await sql`drop index command_targets_command_uuid_idx`.execute(db)
  // Retention: finished targets by age.
  await sql`create index command_targets_finished_idx on command_targets (updated_at) where status not in ('Pending', 'NotNow')`.execute(db)
  // Command list, newest first, optionally by RequestType.
  await sql`create index commands_created_at_idx on commands (created_at, uuid)`.execute(db)
  await sql`create index commands_request_type_idx on commands (request_type, created_at, uuid)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const index of [
    'commands_request_type_idx', 'commands_created_at_idx', 'command_targets_finished_idx', 'command_targets_command_enrollment_idx',
    'command_targets_enrollment_seq_idx', 'enrollments_device_last_seen_idx', 'devices_os_version_idx', 'devices_model_idx',
    'devices_product_name_idx', 'devices_serial_sort_idx', 'devices_created_at_idx',
  ]) {
    await sql`drop index ${sql.id(index)}`.execute(db)
  }
  await sql`create index command_targets_command_uuid_idx on command_targets (command_uuid)`.execute(db)
  await db.schema.dropTable('webhook_deliveries').execute()
  await db.schema.dropTable('webhooks').execute()
  await db.schema.dropTable('api_keys').execute()
}
