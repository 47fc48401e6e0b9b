# git on a small repository: init, add FILES files, commit, change a few, status, log, diff,
# timed inside with $EPOCHREALTIME. The files are written before the clock starts.
#   bash git.sh FILES      (run in a directory the user may write; HOME and GIT_AUTHOR_* etc. set by the caller)
set -e
files=$1
repo=$(mktemp -d "$PWD/git.XXXXXX")
cd "$repo"
for ((i = 0; i < files; i++)); do
	printf 'line one of file %d\nline two\n' "$i" >"file$i.txt"
done
start=${EPOCHREALTIME/./}
git -c init.defaultBranch=main init -q
git add .
git commit -q -m "first commit"
for ((i = 0; i < 5 && i < files; i++)); do
	echo "changed" >>"file$i.txt"
done
git status --short >/dev/null
git log --oneline >/dev/null
git diff >/dev/null
end=${EPOCHREALTIME/./}
cd ..
rm -rf "$repo"
echo "elapsed_ns $(((end - start) * 1000))"
