// `orchard completion bash|zsh`: a completion script made from the command declarations, so
// it always offers the commands and options this build has.
import { globalFlags } from './args.js'
import type { CommandGroup } from './command.js'

export interface CompletionTree {
  groups: Readonly<Record<string, CommandGroup>>
  /** Top-level commands that are not groups (completion, local-keys, help...). */
  leaves: readonly string[]
}

const flagWords = (flags: Readonly<Record<string, unknown>> | undefined) => Object.keys({ ...globalFlags, ...flags }).map((name) => `--${name}`)

export function bashCompletion(tree: CompletionTree): string {
  const top = [...Object.keys(tree.groups), ...tree.leaves].join(' ')
  const cases = Object.entries(tree.groups).map(([group, definition]) => {
    const subs = Object.keys(definition.commands).join(' ')
    const flagCases = Object.entries(definition.commands)
      .map(([name, command]) => `        ${name}) flags="${flagWords(command.flags).join(' ')}" ;;`)
      .join('\n')
    return `    ${group})\n      if [[ $COMP_CWORD -eq 2 ]]; then COMPREPLY=($(compgen -W "${subs}" -- "$cur")); return; fi\n      case "\${COMP_WORDS[2]}" in\n${flagCases}\n      esac ;;`
  })
  return `# orchard bash completion. Load it with:  source <(orchard completion bash)
# or install it:  orchard completion bash > /etc/bash_completion.d/orchard
_orchard() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" flags="${flagWords({}).join(' ')}"
  if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "${top}" -- "$cur")); return; fi
  case "\${COMP_WORDS[1]}" in
${cases.join('\n')}
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _orchard orchard
`
}

export function zshCompletion(tree: CompletionTree): string {
  const top = [...Object.keys(tree.groups), ...tree.leaves].join(' ')
  const cases = Object.entries(tree.groups).map(([group, definition]) => {
    const subs = Object.keys(definition.commands).join(' ')
    const flagCases = Object.entries(definition.commands)
      .map(([name, command]) => `        ${name}) flags=(${flagWords(command.flags).join(' ')}) ;;`)
      .join('\n')
    return `    ${group})\n      if (( CURRENT == 3 )); then compadd -- ${subs}; return; fi\n      case $words[3] in\n${flagCases}\n      esac ;;`
  })
  return `#compdef orchard
# orchard zsh completion. Load it with:  source <(orchard completion zsh)
# or install it as _orchard in a directory of $fpath.
_orchard() {
  local -a flags
  flags=(${flagWords({}).join(' ')})
  if (( CURRENT == 2 )); then compadd -- ${top}; return; fi
  case $words[2] in
${cases.join('\n')}
    completion) compadd -- bash zsh; return ;;
  esac
  if [[ $PREFIX == -* ]]; then compadd -- $flags; else _files; fi
}
if [[ "$funcstack[1]" == "_orchard" ]]; then _orchard "$@"; else compdef _orchard orchard; fi
`
}
