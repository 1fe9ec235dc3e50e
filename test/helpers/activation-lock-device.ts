// A simulated device's answers for Activation Lock: DeviceInformation says whether it is
// supervised (and IsActivationLockEnabled); ActivationLockBypassCode answers the code when
// supervised, and Error (as an unsupervised device does) otherwise. ClearActivationLockBypassCode
// removes a supervised device's code (later ActivationLockBypassCode answers carry none), and is
// an Error on an unsupervised one. Other commands are acknowledged.
import type { PlistDict } from '../../src/mdm/plist.js'
import { commandIn, type MdmResponse, type SimulatedDevice } from './simulated-device.js'

export interface ActivationLockAnswers {
  supervised: boolean
  activationLockEnabled?: boolean
  /** The code this device generated (supervised devices); ClearActivationLockBypassCode removes it. */
  bypassCode?: string
  /** Set when ClearActivationLockBypassCode removed the code. */
  codeCleared?: boolean
}

/** Polls and answers every command queued for the device; returns the request types it got, in order. */
export async function drainCommands(device: SimulatedDevice, answers: ActivationLockAnswers, first?: MdmResponse): Promise<string[]> {
  const seen: string[] = []
  let response = first ?? (await device.idle())
  for (let i = 0; i < 50; i++) {
    const command = commandIn(response)
    if (!command) return seen
    seen.push(command.requestType)
    const [status, keys] = answerFor(command.requestType, answers)
    response = await device.answer(command.uuid, status, keys)
  }
  throw new Error(`the device kept getting commands: ${seen.join(', ')}`)
}

const notSupervised: [string, PlistDict] = [
  'Error',
  { ErrorChain: [{ ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: 'The device is not supervised.' }] },
]

function answerFor(requestType: string, answers: ActivationLockAnswers): [string, PlistDict] {
  switch (requestType) {
    case 'DeviceInformation':
      return [
        'Acknowledged',
        {
          QueryResponses: {
            IsSupervised: answers.supervised,
            ...(answers.activationLockEnabled !== undefined ? { IsActivationLockEnabled: answers.activationLockEnabled } : {}),
          },
        },
      ]
    case 'ActivationLockBypassCode':
      if (answers.supervised && answers.bypassCode) return ['Acknowledged', { ActivationLockBypassCode: answers.bypassCode }]
      if (answers.supervised && answers.codeCleared) return ['Acknowledged', {}]
      return notSupervised
    case 'ClearActivationLockBypassCode':
      if (!answers.supervised) return notSupervised
      delete answers.bypassCode
      answers.codeCleared = true
      return ['Acknowledged', {}]
    default:
      return ['Acknowledged', {}]
  }
}
