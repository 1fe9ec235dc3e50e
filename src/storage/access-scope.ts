// What part of the fleet a caller may see and act on. Every admin query takes one, so the
// tenant and role model can narrow it without changing the routes or the stores'
// signatures. Today every API key sees the whole installation.
export type AccessScope = { readonly kind: 'all' }

export const fullAccess: AccessScope = Object.freeze({ kind: 'all' })
