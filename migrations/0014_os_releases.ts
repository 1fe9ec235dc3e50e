// Frozen: never edit a migration that has landed; add a new numbered one instead.
// The OS release catalogue: Apple's software lookup document (https://gdmf.apple.com/v2/pmv),
// one row per release and set, replaced whole on every fetch or import; and a log of the
// fetches (the status an admin reads, and what failed).
// https://developer.apple.com/documentation/devicemanagement/deploying-software-updates-using-declarative-management
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table os_releases (
      platform text not null check (platform in ('iOS', 'macOS', 'visionOS', 'tvOS', 'watchOS')),
      -- public: PublicAssetSets (what anyone updating is offered); asset: AssetSets (what a
      -- device management service may push, older majors included).
      asset_set text not null check (asset_set in ('public', 'asset')),
      product_version text not null check (product_version ~ '^[0-9]{1,4}(\\.[0-9]{1,4}){0,3}$'),
      build text not null check (build ~ '^[0-9A-Za-z]{1,32}$'),
      -- Dotted numbers compared as numbers (17.10 after 17.9).
      version_key int[] generated always as (string_to_array(product_version, '.')::int[]) stored,
      posting_date date not null,
      -- After it Apple no longer offers the release; null when the document gives none.
      expiration_date date check (expiration_date >= posting_date),
      -- Model identifiers (ProductName, e.g. iPad13,1) and board IDs (Macs) the release installs on.
      supported_devices text[] not null check (cardinality(supported_devices) <= 5000 and array_position(supported_devices, null) is null),
      primary key (platform, asset_set, product_version, build)
    )`.execute(db)
  // The latest release for a model identifier: supported_devices @> array[model].
  await sql`create index os_releases_supported_devices_idx on os_releases using gin (supported_devices)`.execute(db)
  // Releases of a platform, newest first (the list, and the latest per platform).
  await sql`create index os_releases_platform_version_idx on os_releases (platform, version_key desc)`.execute(db)

  await sql`
    create table os_catalogue_fetches (
      id bigint generated always as identity primary key,
      -- The URL fetched, or 'import' for a document an admin uploaded.
      source text not null check (source = 'import' or (source ~ '^https?://' and length(source) <= 2000)),
      fetched_at timestamptz not null default now(),
      outcome text not null check (outcome in ('ok', 'failed')),
      release_count integer check (release_count >= 0),
      skipped_count integer check (skipped_count >= 0),
      document_sha256 text check (document_sha256 ~ '^[0-9a-f]{64}$'),
      error text check (length(error) between 1 and 2000),
      check ((outcome = 'ok') = (error is null)),
      check ((outcome = 'ok') = (release_count is not null and skipped_count is not null and document_sha256 is not null))
    )`.execute(db)
  // The status: the last attempt, and the last one that succeeded.
  await sql`create index os_catalogue_fetches_at_idx on os_catalogue_fetches (fetched_at desc, id desc)`.execute(db)
  await sql`create index os_catalogue_fetches_ok_at_idx on os_catalogue_fetches (fetched_at desc, id desc) where outcome = 'ok'`.execute(db)
}
