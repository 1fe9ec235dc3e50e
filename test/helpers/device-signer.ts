// The simulated devices' Mdm-Signature signer lives with the device simulator (one copy for the
// tool and the tests); test/helpers/cms-signer.ts builds the same with pkijs.
export * from '../../src/simulator/device-signer.js'
