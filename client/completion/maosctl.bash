# bash completion for maosctl -- installed as
# <datadir>/bash-completion/completions/maosctl.
#
# Commands and options come from maosctl itself (`maosctl --help`,
# `maosctl CMD --help`), so they never fall behind it; stream names (read,
# append, tail --stream), table names (kv ...: from the streams kv.TABLE-KEY)
# and queue names (queue ...) come from the running
# daemon (`maosctl streams`, `maosctl queue list`), given up after one
# second when it does not answer.

_maosctl_daemon() {
    # the words that name a socket on this line go on to the daemon query
    local -a sock=()
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == --socket ]] && sock=(--socket "${COMP_WORDS[i + 1]}")
    done
    "${COMP_WORDS[0]}" "${sock[@]}" --timeout 1 "$@" 2>/dev/null
}

_maosctl() {
    local cur prev cmd="" i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --socket | --timeout) ((i++)) ;;
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
    --socket | --batch)
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    --stream)
        COMPREPLY=($(compgen -W "$(_maosctl_daemon streams | awk '{ print $1 }')" -- "$cur"))
        return ;;
    esac
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--socket --timeout --json --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" --help 2>/dev/null |
                sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "$cmd" --help 2>/dev/null |
            grep -o -- '--[a-z][a-z-]*' | sort -u)" -- "$cur"))
        return
    fi
    case $cmd in
    read | append)
        [[ $prev == "$cmd" ]] &&
            COMPREPLY=($(compgen -W "$(_maosctl_daemon streams | awk '{ print $1 }')" -- "$cur")) ;;
    kv)
        if [[ $prev == kv ]]; then
            COMPREPLY=($(compgen -W "get put del list watch" -- "$cur"))
        elif [[ $prev == @(get|put|del|list|watch) ]]; then
            # tables from their streams: kv.TABLE-KEY
            COMPREPLY=($(compgen -W "$(_maosctl_daemon streams --prefix kv. |
                awk '{ n = $1; sub(/^kv\./, "", n); sub(/-.*/, "", n); print n }' | sort -u)" -- "$cur"))
        fi ;;
    session)
        [[ $prev == session ]] && COMPREPLY=($(compgen -W "create list show close" -- "$cur")) ;;
    agent)
        [[ $prev == agent ]] && COMPREPLY=($(compgen -W "list show run" -- "$cur")) ;;
    token)
        if [[ $prev == token ]]; then
            COMPREPLY=($(compgen -W "create list revoke" -- "$cur"))
        elif [[ $prev == revoke ]]; then
            COMPREPLY=($(compgen -W "$(_maosctl_daemon token list | awk '{ print $1 }')" -- "$cur"))
        fi ;;
    queue)
        if [[ $prev == queue ]]; then
            COMPREPLY=($(compgen -W "enqueue claim ack nack extend release list stats show dead retry purge work" -- "$cur"))
        else
            case $prev in
            enqueue | claim | stats | dead | retry | purge | work)
                COMPREPLY=($(compgen -W "$(_maosctl_daemon queue list | awk '{ print $1 }')" -- "$cur")) ;;
            esac
        fi ;;
    esac
}
complete -F _maosctl maosctl
