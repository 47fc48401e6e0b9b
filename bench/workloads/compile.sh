# C compile: gcc compiles and links a small C file TIMES times, timed inside with $EPOCHREALTIME.
#   bash compile.sh SOURCE TIMES     (run in a directory the user may write: the output goes there)
# gcc runs cc1, as, collect2 and ld: many execs, and many opens of headers and libraries.
set -e
source=$1
times=$2
out=$(mktemp -d "$PWD/compile.XXXXXX")
start=${EPOCHREALTIME/./}
for ((i = 0; i < times; i++)); do
	gcc -O2 -o "$out/program" "$source"
done
end=${EPOCHREALTIME/./}
rm -rf "$out"
echo "elapsed_ns $(((end - start) * 1000))"
