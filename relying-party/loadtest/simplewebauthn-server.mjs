// The peer in the HTTP load test: a plain node:http server that does what passgate's
// `POST /api/verify/assertion` does — parse the same JSON request, verify the assertion with
// @simplewebauthn/server, answer with a JSON verdict — so both are measured on the same work.
// Usage: node simplewebauthn-server.mjs PORT   (prints "listening on http://127.0.0.1:PORT")
import http from 'node:http';
import { verifyAuthenticationResponse } from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';

const port = Number(process.argv[2] ?? 0);

async function verify(body) {
  const req = JSON.parse(body);
  const result = await verifyAuthenticationResponse({
    response: req.response,
    expectedChallenge: req.expectedChallenge,
    expectedOrigin: req.expectedOrigins,
    expectedRPID: req.expectedRpId,
    requireUserVerification: req.requireUserVerification ?? true,
    credential: {
      id: req.credential.id,
      publicKey: isoBase64URL.toBuffer(req.credential.publicKey),
      counter: req.credential.signCount ?? 0,
    },
  });
  return { verified: result.verified, verdict: result.authenticationInfo };
}

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on('data', (c) => chunks.push(c));
  request.on('end', () => {
    verify(Buffer.concat(chunks).toString('utf8')).then(
      (out) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(out));
      },
      (err) => {
        response.writeHead(400, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { code: 'rejected', message: String(err.message) } }));
      },
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
