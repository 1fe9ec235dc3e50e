// DER (X.690) as CMS and X.509 use it, read without copies and bounds-checked: the entry
// that the crypto modules import. der-reader.ts walks elements (and holds the BER trap of
// Apple's Mdm-Signature); der-certificate.ts reads certificates and names with it.
export * from './der-reader.js'
export * from './der-certificate.js'
