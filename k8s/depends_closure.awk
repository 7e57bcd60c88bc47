# What apt installs for a list of packages: their Depends/Pre-Depends closure (every alternative of
# an `a | b`), for the runtime-package checks of dockerfile_test.sh and image_test.sh.
#   awk -F'\t' -f depends_closure.awk DEPENDS_TSV PACKAGES
# DEPENDS_TSV: `dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n'` of the system whose
# packages count; PACKAGES: one name a line ("-" for standard input). Prints the closure, a name a
# line, unsorted.
NR == FNR { deps[$1] = $2; next }
{ queue[++n] = $1 }
END {
  for (i = 1; i <= n; i++) {
    p = queue[i]
    if (p in seen || !(p in deps)) continue
    seen[p] = 1
    count = split(deps[p], alts, /[,|]/)
    for (j = 1; j <= count; j++) {
      a = alts[j]
      sub(/\(.*\)/, "", a); gsub(/[ \t]/, "", a); sub(/:[a-z0-9]+$/, "", a)
      if (a != "" && !(a in seen)) queue[++n] = a
    }
  }
  for (p in seen) print p
}
