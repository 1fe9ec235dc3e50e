// deploy/prometheus/alerts.yml and deploy/grafana/orchard.json, linted: `promtool check rules`
// when Debian's prometheus package is installed; always a structural check, including that every
// metric an expression names is one Orchard exports (read from a live /metrics).
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

const root = new URL('../../', import.meta.url)
const alertsPath = new URL('deploy/prometheus/alerts.yml', root)
const dashboardPath = new URL('deploy/grafana/orchard.json', root)

// PromQL's functions, aggregations and keywords: every other identifier outside {} and [] is a metric.
const promqlWords = new Set(
  (
    'sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk limit_ratio by without on ignoring group_left group_right ' +
    'and or unless bool offset abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year ' +
    'days_in_month delta deriv exp floor histogram_quantile histogram_count histogram_sum holt_winters hour idelta increase irate label_join ' +
    'label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt time timestamp vector year ' +
    'avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time last_over_time present_over_time inf nan'
  ).split(' '),
)

/** The metric names a PromQL expression reads. */
function metricNames(expr: string): string[] {
  let rest = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  rest = rest.replace(/\b\d+(\.\d+)?([eE][+-]?\d+)?\b/g, ' ')
  const names = new Set<string>()
  for (const match of rest.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) if (!promqlWords.has(match[0].toLowerCase())) names.add(match[0])
  return [...names]
}

function balanced(expr: string): boolean {
  let depth = 0
  for (const char of expr.replace(/"(?:[^"\\]|\\.)*"/g, '')) {
    if ('([{'.includes(char)) depth++
    if (')]}'.includes(char)) depth--
    if (depth < 0) return false
  }
  return depth === 0
}

async function exportedMetrics(t: { teardown(fn: () => unknown): void }): Promise<Set<string>> {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const body = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const names = new Set<string>(['up']) // Prometheus's own, per scrape target
  for (const [, name, type] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`)
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`)
  }
  return names
}

t.test('metricNames finds the metrics of an expression and nothing else', async (t) => {
  t.same(metricNames('histogram_quantile(0.95, sum by (le, route) (rate(orchard_http_request_duration_seconds_bucket{route!="x"}[5m])))'), [
    'orchard_http_request_duration_seconds_bucket',
  ])
  t.same(metricNames('time() - max by (name) (orchard_abm_sync_last_success_timestamp_seconds) > 2 * 86400'), [
    'orchard_abm_sync_last_success_timestamp_seconds',
  ])
  t.same(metricNames('up{job="orchard"} == 0 and on (instance) orchard_ready'), ['up', 'orchard_ready'])
})

const promtool = spawnSync('which', ['promtool'], { encoding: 'utf8' }).status === 0

t.test(
  'promtool check rules accepts alerts.yml',
  { skip: !promtool && 'promtool is not installed (Debian package prometheus): the structural test below checks alerts.yml instead' },
  async (t) => {
    const output = execFileSync('promtool', ['check', 'rules', fileURLToPath(alertsPath)], { encoding: 'utf8' })
    t.match(output, /SUCCESS/)
  },
)

t.test('alerts.yml: every rule is complete and reads only metrics Orchard exports', async (t) => {
  const exported = await exportedMetrics(t)
  const document = parse(readFileSync(alertsPath, 'utf8')) as { groups: Array<{ name: string; rules: Array<Record<string, unknown>> }> }
  t.ok(document.groups.length > 0)
  const alerts = new Map<string, Record<string, unknown>>()
  for (const group of document.groups) {
    t.type(group.name, 'string')
    for (const rule of group.rules) {
      const name = String(rule['alert'])
      t.notOk(alerts.has(name), `${name} is unique`)
      alerts.set(name, rule)
      const expr = rule['expr']
      t.type(expr, 'string', `${name}: expr`)
      t.ok(balanced(String(expr)), `${name}: brackets balance`)
      t.match(rule['for'], /^\d+[smhdw]$/, `${name}: for`)
      t.match(rule['labels'], { severity: /^(critical|warning|info)$/ }, `${name}: labels.severity`)
      t.match(rule['annotations'], { summary: String, description: String }, `${name}: annotations`)
      const names = metricNames(String(expr))
      t.ok(names.length > 0, `${name}: reads a metric`)
      for (const metric of names) t.ok(exported.has(metric), `${name}: ${metric} is exported`)
    }
  }
  // What the issue asks for.
  t.match(alerts.get('OrchardCertificateExpiringSoon'), { expr: /orchard_certificate_expiry_days\) < 30$/ })
  t.match(alerts.get('OrchardAbmSyncFailing'), { for: '1h' })
  t.match(alerts.get('OrchardVppSyncFailing'), { for: '1h' })
  t.match(alerts.get('OrchardCommandQueueOld'), { expr: /orchard_commands_oldest_pending_age_seconds/ })
  t.match(alerts.get('OrchardWebhookOutboxStuck'), { expr: /orchard_webhook_outbox_oldest_pending_age_seconds/ })
  t.match(alerts.get('OrchardReplicaNotReady'), { expr: 'orchard_ready == 0' })
})

t.test('orchard.json: a Grafana dashboard whose every query reads exported metrics, covering every Orchard metric', async (t) => {
  const exported = await exportedMetrics(t)
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    uid: string
    title: string
    templating: { list: Array<{ name: string; type: string }> }
    panels: Array<{ id: number; type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string; refId: string }> }>
  }
  t.equal(dashboard.uid, 'orchard-overview')
  t.equal(dashboard.title, 'Orchard')
  t.match(dashboard.templating.list, [{ name: 'datasource', type: 'datasource' }])
  const ids = new Set(dashboard.panels.map((panel) => panel.id))
  t.equal(ids.size, dashboard.panels.length, 'panel ids are unique')
  const used = new Set<string>()
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
    t.equal(panel.datasource?.uid, '${datasource}', `${panel.title}: the dashboard's data source`)
    t.ok(panel.targets && panel.targets.length > 0, `${panel.title}: has queries`)
    for (const target of panel.targets ?? []) {
      t.ok(balanced(target.expr), `${panel.title}: brackets balance`)
      for (const metric of metricNames(target.expr)) {
        t.ok(exported.has(metric), `${panel.title}: ${metric} is exported`)
        used.add(metric.replace(/_(bucket|sum|count)$/, ''))
      }
    }
  }
  const orchardMetrics = [...exported].filter((name) => name.startsWith('orchard_') && !/_(bucket|sum|count)$/.test(name))
  for (const name of orchardMetrics.filter((name) => !['orchard_info', 'orchard_tenant_info'].includes(name))) {
    t.ok(used.has(name) || used.has(name.replace(/_total$/, '')), `the dashboard shows ${name}`)
  }
})
