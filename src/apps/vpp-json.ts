// Apps and Books in the admin API's JSON: content tokens, their sync reports and the assets.
import type { VppAsset, VppSyncReport, VppToken } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import type { VppAssetView } from './vpp-asset-store.js'
import type { VppSyncReport as SyncReport } from './vpp-sync.js'
import type { VppTokenView } from './vpp-tokens.js'

export function vppTokenJson(token: VppTokenView): VppToken {
  return {
    id: token.id,
    tenant_id: token.tenant_id,
    name: token.name,
    org_name: token.org_name,
    location_name: token.location_name,
    location_uid: token.location_uid,
    country_code: token.country_code,
    expires_at: iso(token.expires_at),
    days_left: token.daysLeft,
    expires_soon: token.expiresSoon,
    serves_sub_tenants: token.serves_sub_tenants,
    status: token.status,
    status_detail: token.status_detail,
    status_at: iso(token.status_at)!,
    retry_after: iso(token.retry_after),
    last_sync_at: iso(token.last_sync_at),
    asset_count: token.assetCount,
    created_at: iso(token.created_at)!,
  }
}

export function vppSyncJson(report: SyncReport): VppSyncReport {
  return {
    vpp_token_id: report.tokenId,
    outcome: report.outcome,
    assets: report.assets,
    assignments: report.assignments,
    requests: report.requests,
    status: report.status,
    status_detail: report.detail,
  }
}

export function vppAssetJson(asset: VppAssetView): VppAsset {
  return {
    vpp_token_id: asset.tokenId,
    token_name: asset.tokenName,
    tenant_id: asset.tenantId,
    location_name: asset.locationName,
    adam_id: asset.adamId,
    pricing_param: asset.pricingParam,
    product_type: asset.productType,
    total_count: asset.totalCount,
    assigned_count: asset.assignedCount,
    available_count: asset.availableCount,
    retired_count: asset.retiredCount,
    device_assignable: asset.deviceAssignable,
    revocable: asset.revocable,
    supported_platforms: asset.supportedPlatforms,
    synced_at: iso(asset.syncedAt)!,
  }
}
