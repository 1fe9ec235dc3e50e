import t from 'tap'
import { oauth1Authorization, percentEncode } from '../../src/ade/oauth1.js'

t.test('HMAC-SHA1 signature of the OAuth Core 1.0 Appendix A.5 example', async (t) => {
  const header = oauth1Authorization(
    'GET',
    'http://photos.example.net/photos?file=vacation.jpg&size=original',
    { consumerKey: 'dpf43f3p2l4k3l03', consumerSecret: 'kd94hf93k423kf44', accessToken: 'nnch734d00sl2jdk', accessSecret: 'pfkkdhi9sl3r4s00' },
    { timestamp: 1191242096, nonce: 'kllo9940pd9333jh', realm: 'ADM' },
  )
  t.match(header, /^OAuth realm="ADM", oauth_consumer_key="dpf43f3p2l4k3l03", /)
  t.match(header, /oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D"$/)
  t.match(header, /oauth_signature_method="HMAC-SHA1"/)
  t.match(header, /oauth_version="1.0"/)
})

t.test('percent-encoding is RFC 3986 (RFC 5849 §3.6)', async (t) => {
  t.equal(percentEncode("a b!*'()~-._"), 'a%20b%21%2A%27%28%29~-._')
  t.equal(percentEncode('é'), '%C3%A9')
})

t.test('the default port is left out of the base string, a custom one kept', async (t) => {
  const credentials = { consumerKey: 'k', consumerSecret: 's', accessToken: 't', accessSecret: 'a' }
  const options = { timestamp: 1, nonce: 'n' }
  t.equal(
    oauth1Authorization('GET', 'https://host.test:443/session', credentials, options),
    oauth1Authorization('GET', 'https://HOST.test/session', credentials, options),
  )
  t.not(
    oauth1Authorization('GET', 'https://host.test:8443/session', credentials, options),
    oauth1Authorization('GET', 'https://host.test/session', credentials, options),
  )
})
