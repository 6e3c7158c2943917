// A registration verified by @simplewebauthn/server (the pinned version in package.json), for
// the interop tests: reads one JSON object on stdin —
//   {response, expectedChallenge, expectedOrigin, expectedRPID, rootCertificates: {fmt: [PEM]}}
// — sets each format's trust anchors (SettingsService.setRootCertificates) and prints
// {"verified": bool, "fmt": ..., "error": ...} on stdout.
import { SettingsService, verifyRegistrationResponse } from '@simplewebauthn/server';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
for (const [identifier, certificates] of Object.entries(req.rootCertificates ?? {})) {
  SettingsService.setRootCertificates({ identifier, certificates });
}
try {
  const result = await verifyRegistrationResponse({
    response: req.response,
    expectedChallenge: req.expectedChallenge,
    expectedOrigin: req.expectedOrigin,
    expectedRPID: req.expectedRPID,
    requireUserVerification: false,
  });
  console.log(JSON.stringify({
    verified: result.verified,
    fmt: result.registrationInfo?.fmt ?? null,
  }));
} catch (error) {
  console.log(JSON.stringify({ verified: false, error: String(error?.message ?? error) }));
}
