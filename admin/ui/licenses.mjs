// Writes dist/third-party-licenses.txt: the license of every npm package
// the dashboard's bundles are built from (production dependencies and
// theirs, from package-lock.json), plus the notices MQTT.js's own browser
// bundle carries for what it bundles. Vite's minifier drops license
// comments, so the notices ship in this file (served at
// /third-party-licenses.txt) instead.
import fs from 'node:fs'
import path from 'node:path'

const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'))
const out = ['Third-party software in the mcutie dashboard (admin/ui), with its licenses.\n']
const names = Object.entries(lock.packages)
  .filter(([p, m]) => p.startsWith('node_modules/') && !m.dev)
  .map(([p, m]) => [p, m.version, m.license])
  .sort(([a], [b]) => a.localeCompare(b))
for (const [p, version, license] of names) {
  const dir = p
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^(licen[cs]e|copying|notice)/i.test(f)) : []
  out.push('='.repeat(72), `${p.replace(/^.*node_modules\//, '')} ${version} (${license ?? 'see below'})`, '='.repeat(72))
  for (const f of files) out.push(fs.readFileSync(path.join(dir, f), 'utf8').trim(), '')
  if (!files.length) out.push(`(no license file in the package; package.json says ${license})`, '')
}
const esm = fs.readFileSync('node_modules/mqtt/dist/mqtt.esm.js', 'utf8')
const i = esm.lastIndexOf('/*! Bundled license information:')
if (i >= 0) out.push('='.repeat(72), 'Bundled inside MQTT.js\'s browser build (mqtt/dist/mqtt.esm.js)', '='.repeat(72), esm.slice(i).trim(), '')
fs.writeFileSync('dist/third-party-licenses.txt', out.join('\n') + '\n')
