# Exec loop: bash runs /bin/true COUNT times, timed inside with $EPOCHREALTIME (microseconds).
#   bash exec_loop.sh COUNT
# Each iteration is a fork and an exec: the exec decision, the loader's opens of /bin/true's libraries.
count=$1
start=${EPOCHREALTIME/./}
for ((i = 0; i < count; i++)); do
	/bin/true
done
end=${EPOCHREALTIME/./}
echo "elapsed_ns $(((end - start) * 1000))"
