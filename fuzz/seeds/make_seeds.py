"""Writes the handwritten seeds under fuzz/seeds/<target>/ (run from anywhere:
`python3 fuzz/seeds/make_seeds.py`). Files named corpus-* are not made here:
they were picked from a fuzzing run's corpus (see fuzz/README.md)."""
import os, base64, json, hmac, hashlib
root = os.path.dirname(os.path.abspath(__file__))
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

SEED = {"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100","type":"buy","client_ip":"203.0.113.42"}
def j(o): return json.dumps(o, separators=(',',':'))

# json_object
put('json_object','seed_request', j(SEED))
put('json_object','nested', '{"a":"x","b":null,"c":[1,{"k":true}],"d":{"e":{"f":-1.5e3}},"g":"caf\\u00e9"}')
put('json_object','duplicate_nested', '{"a":"1","x":[{"k":1,"k":2}]}')
put('json_object','escaped_duplicate', '{"a":"1","\\u0061":"2"}')
put('json_object','many_keys', '{' + ','.join('"k%d":%d' % (i,i) for i in range(20)) + ',"k3":0}')
put('json_object','not_object', '[{"a":1}]')

# session_request: selector byte (low 2 bits = partner, bit 2 = structured)
put('session_request','acme_seed', b'\x00' + j(SEED).encode())
s = dict(SEED, address="TXYZabcdefghijkmnopqrstuvwxyz99999", amount="1.123456"); put('session_request','concat_address', b'\x01' + j(s).encode())
s = dict(SEED, redirect_url="https://APP.example.com/done?x=1", type="sell", client_ip="::FFFF:203.0.113.42"); put('session_request','hosts_redirect', b'\x02' + j(s).encode())
s = dict(SEED, address="0x52908400098527886E0F7030069857D2E4169EE7", network="ERC20", redirect_url="http://[::1]:8080/"); put('session_request','own_evm', b'\x03' + j(s).encode())
s = dict(SEED); del s['type']; s['client_ip'] = None; put('session_request','defaults', b'\x00' + j(s).encode())

# init_request
INIT = {"widget_id":"fb359d09-fff6-4b1f-906c-b9062b135065","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","init_token":"t","signature":"v2:00","address":"TXYZabcdefghijkmnopqrstuvwxyz12345","currency":"USDT","network":"TRC20","amount":"100","type":"buy"}
put('init_request','valid', b'\x00' + j(INIT).encode())
put('init_request','braced_ids', b'\x00' + j(dict(INIT, widget_id="{fb359d09-fff6-4b1f-906c-b9062b135065}", merchant_transaction_id="550e8400e29b41d4a716446655440000")).encode())
i2 = dict(INIT); del i2['type']; put('init_request','missing_type', b'\x00' + j(i2).encode())

# provider_event
EV = {"event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"completed","crypto_amount":"100","fiat_amount":"92.15","fiat_currency":"EUR","payment_method":"card","occurred_at":"2026-11-24T10:00:00Z","kyc_status":"verified"}
put('provider_event','full', b'\x00' + j(EV).encode())
put('provider_event','minimal', b'\x00' + j({"event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"processing"}).encode())
put('provider_event','offset_time', b'\x00' + j(dict(EV, occurred_at="2026-11-24T09:35:30.123456+01:00")).encode())

# init_token_verify: selector 0 raw token; 1 edits of the minted token; 2 signed claims payload
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
hdr = b64(b'{"alg":"HS256","typ":"JWT","kid":"t1"}')
claims = '{"jti":"j","sub":"550e8400-e29b-41d4-a716-446655440000","aud":"fb359d09-fff6-4b1f-906c-b9062b135065","iat":1795509330,"exp":1795512930}'
put('init_token_verify','raw_jwt_shape', b'\x00\x00\x00' + (hdr + '.' + b64(claims.encode()) + '.' + 'A'*43).encode())
put('init_token_verify','alg_none', b'\x00\x00\x00' + (b64(b'{"alg":"none","typ":"JWT"}') + '.' + b64(claims.encode()) + '.').encode())
put('init_token_verify','minted_unedited', b'\x01\x00\x00')
put('init_token_verify','minted_old_key_late', b'\x04\x10\x0e')
put('init_token_verify','minted_flip', b'\x01\x00\x00\x00\x00\x00\x05\x00\x01')
put('init_token_verify','signed_claims', b'\x02\x00\x00' + claims.encode())
put('init_token_verify','signed_claims_extra', b'\x02\x00\x00' + claims[:-1].encode() + b',"admin":true}')
put('init_token_verify','signed_claims_dup', b'\x02\x00\x00' + claims[:-1].encode() + b',"sub":"x"}')

# values: selector, arg, text
vals = [(0,8,"999999999999999999.12345678"),(0,0,"1"),(1,0,"a.b+tag@sub.example.co.uk"),(2,0,"BEP-20"),
        (3,0,"::FFFF:203.0.113.42"),(3,0,"2001:0db8:0000:0000:0001:0000:0000:0001"),(4,0,"https://app.example.com:8443/done?x=1#y"),
        (5,0,"http://LOCALHOST:3000/done"),(6,0,"0x52908400098527886E0F7030069857D2E4169EE7"),(6,4,"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        (6,9,"acct:12345678"),(7,0,"user-123 / \u00fc"),(8,0,"2026-11-24T09:35:30.123456+01:00"),(8,0,"0000-01-01T00:00:00Z"),
        (9,0,"v2:" + "ab"*64),(9,0,"Bearer ct_test_" + "A"*43),(9,0,"10.0.0.7/8"),(9,0,"{550e8400-e29b-41d4-a716-446655440000}")]
for n,(sel,arg,text) in enumerate(vals):
    put('values','v%02d' % n, bytes([sel,arg]) + text.encode())

# bootstrap_toml (even selector = raw TOML)
TOK = "ct_test_" + "A"*43
toml = '''[[partner]]
id = "acme"
name = "Acme Wallet"
client_tokens = ["%s"]
client_token_sha256 = ["%s"]
allowed_origins = ["https://app.acme.example"]
allowed_ips = ["127.0.0.0/8", "::1/128"]
redirect_hosts = ["app.acme.example"]
webhook_url = "https://hooks.acme.example/proof"
signature_scheme = "hmac-sha512"

[partner.widget]
widget_id = "fb359d09-fff6-4b1f-906c-b9062b135065"
currencies = ["USDT"]
networks = ["TRC20", "ERC20"]
fiat_currency = "EUR"
fiat_currencies = ["EUR", "USD"]
type = "buy"
redirect_url = "https://app.acme.example/done"

[partner.widget.decimals]
USDT = 6

[[partner.wallet]]
currency = "USDT"
network = "TRC20"
address = "TXYZabcdefghijkmnopqrstuvwxyz12345"
active = true
''' % (TOK, hashlib.sha256(b"ct_live_some-other-token").hexdigest())
put('bootstrap_toml','spec_example', b'\x00' + toml.encode())
put('bootstrap_toml','empty', b'\x00')
put('bootstrap_toml','two_partners', b'\x00' + (toml + toml.replace('id = "acme"','id = "other"').replace(TOK, "ct_live_" + "B"*43).replace(hashlib.sha256(b"ct_live_some-other-token").hexdigest(), "00"*32)).encode())

# http_request raw mode: 4 bytes >= 2^31 choose Input::Raw, rest is written to the socket.
def splitmix(n):
    z = (n + 0x9e3779b97f4a7c15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)
acme = "ct_test_" + b64(b''.join(splitmix(i).to_bytes(8,'little') for i in range(4)))
def req(method, path, headers, body=b''):
    h = ''.join('%s: %s\r\n' % kv for kv in headers)
    return ('%s %s HTTP/1.1\r\nhost: localhost\r\n%scontent-length: %d\r\n\r\n' % (method, path, h, len(body))).encode() + body
RAW = b'\x01'
body = j(SEED).encode()
put('http_request','raw_create', RAW + req('POST','/widget/session',[('authorization','Bearer '+acme),('content-type','application/json')], body))
put('http_request','raw_pipelined', RAW + req('POST','/widget/session',[('authorization','Bearer '+acme),('content-type','application/json'),('x-request-id','req-1')], body)
    + req('GET','/widget/transactions/00000000-0000-0000-0000-000000000000',[('authorization','Bearer '+acme)])
    + req('OPTIONS','/widget/init',[('origin','https://widget.example')]))
put('http_request','raw_events', RAW + req('POST','/provider/events',[('content-type','application/json'),('x-signature', hmac.new(b'provider-shared-secret', j(EV).encode(), hashlib.sha256).hexdigest())], j(EV).encode()))
put('http_request','raw_chunked', RAW + b'POST /widget/init HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\norigin: https://widget.example\r\n\r\n5\r\n{"a":\r\n4\r\n"b"}\r\n0\r\n\r\n')
put('http_request','raw_kyc_xff', RAW + req('GET','/widget/users/u%2F1%20%C3%A9/kyc-status',[('authorization','bearer  '+acme),('x-forwarded-for','1.1.1.1, 10.0.0.1'),('origin','https://app.acme.example')]))
put('http_request','raw_chunked_broken', RAW + b'POST /widget/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nauthorization: Bearer ' + acme.encode() + b'\r\n\r\n5\r\n{"a":\r\n3\r\n"b"}\r\n0\r\n\r\n')
put('http_request','raw_slow_body', RAW + b'POST /widget/init HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"widget_id":')
put('http_request','raw_bad', RAW + b'GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n')
put('http_request','raw_sandbox', RAW + req('GET','/widget/sdk.js',[])
    + req('OPTIONS','/sandbox/transactions/00000000-0000-0000-0000-000000000000/simulate',[('origin','https://widget.example')])
    + req('POST','/sandbox/transactions/00000000-0000-0000-0000-000000000000/simulate',[('authorization','Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'),('content-type','application/json'),('origin','https://widget.example')], b'{"outcome":"completed"}'))
print(acme)
