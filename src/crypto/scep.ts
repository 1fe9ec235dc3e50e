// SCEP messages (RFC 8894) on the server side: read a PKIOperation (CMS SignedData around
// an EnvelopedData around a PKCS#10 request), and build the CertRep answer and the
// GetCACert chain. Parsing uses the bounds-checked DER reader, cryptography node:crypto.
//
// This module is the entry the SCEP service imports; the work is split by concern:
// - scep-definitions.ts: OIDs, message types, failInfo codes, the two refusals;
// - scep-request.ts: reading the PKIOperation's SignedData and the PKCS#10 request;
// - scep-envelope.ts: opening and building the EnvelopedData (DES and key-transport traps);
// - scep-cert-rep.ts: the certs-only SignedData and the signed CertRep.
export { failInfoCodes, ScepFailure, ScepMalformed, ScepMessageType, ScepOid, type FailInfo } from './scep-definitions.js'
export { readCertificationRequest, readPkiMessage, type CertificationRequest, type PkiMessage } from './scep-request.js'
export { envelope, openEnvelope, requesterKey, type ContentEncryption, type EnvelopeRecipient } from './scep-envelope.js'
export { buildCertRep, certsOnly, type CertRepOptions, type CertRepResult, type CertRepSigner } from './scep-cert-rep.js'
