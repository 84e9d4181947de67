# bash completion for facenames(1): commands, subcommands, options, job ids and configuration keys.
#
# Nothing here lists a command or an option: they are read from the program's own help
# (`facenames --help`, `facenames help COMMAND`) the first time they are needed in a shell, so a
# command added to the program completes without editing this file. Job ids come from
# `facenames jobs list` and configuration keys from `facenames config`, for the library and
# configuration given on the command line being completed. Installed as
# /usr/share/bash-completion/completions/facenames; tests/package/test_completion.c drives it.

declare -gA _facenames_help_cache=()

# The help text of "$1" ("" for the program's own), from the program "$2", cached per shell.
_facenames_help() {
    local key="$2|$1"
    if [[ -z ${_facenames_help_cache[$key]+set} ]]; then
        if [[ -z $1 ]]; then
            _facenames_help_cache[$key]=$("$2" --help 2>/dev/null)
        else
            _facenames_help_cache[$key]=$("$2" help "$1" 2>/dev/null)
        fi
    fi
    printf '%s\n' "${_facenames_help_cache[$key]}"
}

# The commands listed under "Commands:" in `facenames --help`.
_facenames_commands() {
    _facenames_help "" "$1" | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit}
        on && /^  [a-z]/ && !seen[$1]++ {print $1}'
}

# The global options listed under "Options" in `facenames --help`.
_facenames_global_options() {
    _facenames_help "" "$1" | awk '/^Options/ {on = 1; next} on && /^$/ {exit}
        on && /^ +-/ { for (i = 1; i <= NF && $i ~ /^--?[a-z]/; i++) {
            w = $i; gsub(/[^a-z-]/, "", w); print w } }'
}

# The usage lines of command "$2" (with their continuation lines), one per line.
_facenames_usage() {
    _facenames_help "$2" "$1" | awk -v cmd="$2" '
        $1 == "usage:" { $1 = "" ; on = 1 }
        on && /^ *facenames / { print; cont = 1; next }
        on && cont && /^ +\[/ { print; next }
        { cont = 0 }'
}

# The subcommands of command "$2": the word after "facenames COMMAND" in its usage lines, when it is
# a lower-case word (list, show, [show], list|show).
_facenames_subcommands() {
    _facenames_usage "$1" "$2" | awk -v cmd="$2" '{
        for (i = 1; i < NF; i++) if ($i == "facenames" && $(i + 1) == cmd) {
            w = $(i + 2); gsub(/[][]/, "", w)
            if (w ~ /^[a-z][a-z|-]*$/) { n = split(w, a, "|"); for (j = 1; j <= n; j++) print a[j] }
        } }' | sort -u
}

# The options of command "$2" (subcommand "$3" when given): those in the subcommand's usage line
# when it has one, else every option the command's help mentions.
_facenames_options() {
    local text
    if [[ -n $3 ]]; then
        text=$(_facenames_usage "$1" "$2" | awk -v cmd="$2" -v sub_="$3" '
            { for (i = 1; i < NF; i++) if ($i == "facenames" && $(i + 1) == cmd) {
                  w = $(i + 2); gsub(/[][]/, "", w); n = split(w, a, "|"); on = 0
                  for (j = 1; j <= n; j++) if (a[j] == sub_) on = 1 } }
            on')
    fi
    # Else the usage lines and the lines that document an option ("  --json   ...").
    [[ -n $text ]] || text=$(_facenames_usage "$1" "$2"
        _facenames_help "$2" "$1" | grep -E -- '^ +--[a-z]' | awk '{print $1}')
    grep -o -- '--[a-z][a-z-]*' <<<"$text" | sort -u
}

# The placeholder that follows the subcommand (or the command) in its usage line: ID, PATH, ...
_facenames_operand() {
    _facenames_usage "$1" "$2" | awk -v cmd="$2" -v sub_="$3" '{
        for (i = 1; i < NF; i++) if ($i == "facenames" && $(i + 1) == cmd) {
            k = i + 2
            if (sub_ != "") { w = $k; gsub(/[][]/, "", w); n = split(w, a, "|"); hit = 0
                for (j = 1; j <= n; j++) if (a[j] == sub_) hit = 1
                if (!hit) next; k++ }
            for (; k <= NF; k++) { w = $k; gsub(/[][.]/, "", w); if (w ~ /^[A-Z]/) { print w; exit } }
        } }'
}

# The values an option takes when its help spells them: "--detector ssd|tiny" or "STATE is
# queued, running, cancelled, completed or failed" (STATE being the option's placeholder).
_facenames_option_values() {
    local text; text=$(_facenames_help "$2" "$1")
    local line; line=$(grep -o -- "$3 [A-Za-z|]*" <<<"$text" | head -n 1)
    local arg=${line#"$3 "}
    if [[ $arg == *"|"* ]]; then
        tr '|' '\n' <<<"$arg"
    elif [[ $arg =~ ^[A-Z]+$ ]] && grep -q -- "$arg is [a-z, ]* or [a-z]*" <<<"$text"; then
        grep -o -- "$arg is [a-z, ]* or [a-z]*" <<<"$text" | head -n 1 |
            sed -e "s/^$arg is //" -e 's/,/ /g' -e 's/ or / /' | tr -s ' ' '\n'
    elif [[ $3 == --priority ]]; then
        printf '%s\n' interactive normal background # the engine's lanes (jobs.h)
    fi
}

# Job ids of the library the command line names (`jobs list`: the first column, newest first).
_facenames_job_ids() {
    "$1" "${@:2}" jobs list --limit 1000 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}'
}

# Configuration keys (`facenames config` prints "key = value" lines).
_facenames_config_keys() {
    "$1" "${@:2}" config show 2>/dev/null | awk '$2 == "=" && $1 ~ /^[a-z_]+\.[a-z_.]+$/ {print $1}'
}

_facenames() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]} cmd="" sub="" i w
    local -a where=() # --library/--config/--set given so far: job ids and keys come from there
    COMPREPLY=()
    prog=${prog/#\~/$HOME}
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --library | --config | --set)
            # The value being typed is not given yet (and may be half a word).
            ((i + 1 < COMP_CWORD)) && where+=("$w" "${COMP_WORDS[i + 1]}")
            ((i++))
            continue
            ;;
        --) break ;;
        -*) continue ;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
            [[ $cmd == help ]] && break
        elif [[ -z $sub ]] && _facenames_subcommands "$prog" "$cmd" | grep -qx -- "$w"; then
            sub=$w
        fi
    done

    case $prev in
    --library | --annotate | --models | --under)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return
        ;;
    --config)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --set)
        compopt -o nospace 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -W "$(_facenames_config_keys "$prog" "${where[@]}" |
            sed 's/$/=/')" -- "$cur")
        return
        ;;
    --*)
        if [[ -n $cmd ]]; then
            local values; values=$(_facenames_option_values "$prog" "$cmd" "$prev")
            if [[ -n $values ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")
                return
            fi
            # An option with a placeholder that is not a known list takes free text.
            if _facenames_help "$cmd" "$prog" | grep -q -- "$prev [A-Z]"; then return; fi
        fi
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$(_facenames_global_options "$prog")" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$(_facenames_commands "$prog")" -- "$cur")
        fi
        return
    fi
    if [[ $cmd == help ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_facenames_commands "$prog")" -- "$cur")
        return
    fi
    local subs; subs=$(_facenames_subcommands "$prog" "$cmd")
    if [[ -n $subs && -z $sub && $cur != -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
        return
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_facenames_options "$prog" "$cmd" "$sub") --help" \
            -- "$cur")
        return
    fi
    case $(_facenames_operand "$prog" "$cmd" "$sub") in
    ID*) [[ $cmd == jobs ]] &&
        mapfile -t COMPREPLY < <(compgen -W "$(_facenames_job_ids "$prog" "${where[@]}")" -- "$cur") ;;
    PATH* | IMAGE* | DIR* | FILE*)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        ;;
    esac
}
complete -F _facenames facenames
