#!/usr/bin/env bash
# Start a real Apache Flink 1.19.3 standalone cluster and a Beam 2.62.0 Flink job server on
# loopback, for the Flink end-to-end test (tests/pipelines/test_flink.py). Idempotent: downloads,
# builds and running processes that are already there are reused.
#
#   .ci/flink/setup.sh            # then: HYBRIDMIX_FLINK_JOB_ENDPOINT=localhost:8099 make test
#   .ci/flink/stop.sh
#
# Needs Java 17 (java, javac), Maven (Maven Central) and Python 3 with pip (PyPI), curl.
# Everything goes to $HYBRIDMIX_FLINK_HOME (default .ci/flink/work, git-ignored):
#   m2/            Maven local repository used by this script (-Dmaven.repo.local)
#   downloads/     the two PyPI files the Flink distribution is assembled from
#   flink-1.19.3/  Flink distribution (lib/opt/plugins from apache-flink-libraries, bin/conf from apache-flink)
#   jobserver/     pom.xml, lib/ (job server classpath), classes/, hybridmix-flink-jobserver.jar
#   run/           PID files (Flink's and the job server's);  log/  job server log;  tmp/  Flink temp dirs
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${HYBRIDMIX_FLINK_HOME:-$HERE/work}"
BEAM_VERSION=2.62.0
FLINK_VERSION=1.19.3
FLINK_MINOR=1.19
REST_PORT="${HYBRIDMIX_FLINK_REST_PORT:-8081}"
JOB_PORT="${HYBRIDMIX_FLINK_JOB_PORT:-8099}"
ARTIFACT_PORT="${HYBRIDMIX_FLINK_ARTIFACT_PORT:-8098}"
EXPANSION_PORT="${HYBRIDMIX_FLINK_EXPANSION_PORT:-8097}"
CLUSTER_TIMEOUT="${HYBRIDMIX_FLINK_CLUSTER_TIMEOUT:-120}"
JOBSERVER_TIMEOUT="${HYBRIDMIX_FLINK_JOBSERVER_TIMEOUT:-90}"
# PyPI files, pinned by hash (pip checks them).
LIBS_SHA256=4a58e3a1fb7d83340bc96b6c080624c6d792d69fae5d294b96224775204a9c60  # apache-flink-libraries-1.19.3.tar.gz
WHEEL_SHA256=ff572c6ffa3867c21b8a455aefb50c53c91973fd0408df594ca26cb0a7bebc77 # apache_flink-1.19.3-cp311-...-manylinux2014_x86_64.whl

FLINK="$WORK/flink-$FLINK_VERSION"
JS="$WORK/jobserver"
RUN="$WORK/run"
LOG="$WORK/log"
THIN_JAR="$JS/hybridmix-flink-jobserver.jar"
JS_PID="$RUN/jobserver.pid"
JS_LOG="$LOG/jobserver.log"
REST="http://localhost:$REST_PORT"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
T0=$(now_ms)
say() { printf '[flink-setup %6ss] %s\n' "$(since "$T0")" "$*"; }
die() { echo "flink-setup: ERROR: $*" >&2; exit 1; }

for tool in java javac mvn curl; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
PY="${PYTHON:-python3}"
if ! "$PY" -m pip --version >/dev/null 2>&1 && [[ -z "${PYTHON:-}" && -x "$HERE/../../.venv/bin/python" ]]; then
  PY="$HERE/../../.venv/bin/python"  # the project's venv (make install) when python3 has no pip
fi
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip (set PYTHON to a Python 3 with pip)"
mkdir -p "$WORK" "$RUN" "$LOG" "$WORK/tmp" "$WORK/downloads" "$JS"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- 1. job server classpath (Maven)
POM="$JS/pom.xml"
cat > "$POM.new" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- written by .ci/flink/setup.sh: the classpath of Beam's Flink $FLINK_MINOR job server -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>hybridmix.ci</groupId>
  <artifactId>flink-job-server-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.beam</groupId>
      <artifactId>beam-runners-flink-$FLINK_MINOR</artifactId>
      <version>$BEAM_VERSION</version>
    </dependency>
    <!-- logging backend; Beam's shaded job server jar bundles slf4j-jdk14 too -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-jdk14</artifactId>
      <version>1.7.30</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.6.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
if [[ -f "$JS/lib.done" ]] && cmp -s "$POM.new" "$POM"; then
  rm -f "$POM.new"
  say "job server classpath: up to date ($(ls "$JS/lib" | wc -l) jars)"
else
  mv "$POM.new" "$POM"
  rm -rf "$JS/lib" "$JS/lib.done"
  say "job server classpath: mvn dependency:copy-dependencies (Beam $BEAM_VERSION, Flink $FLINK_MINOR) ..."
  (cd "$JS" && mvn -B -q -C -Dmaven.repo.local="$WORK/m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=lib) > "$LOG/mvn.log" 2>&1 \
    || { tail -40 "$LOG/mvn.log" >&2; die "maven could not resolve the job server classpath (log: $LOG/mvn.log)"; }
  touch "$JS/lib.done"
  say "job server classpath: $(ls "$JS/lib" | wc -l) jars, $(du -sh "$JS/lib" | cut -f1)"
fi

# ---------------------------------------------------------------- 2. launcher jar (javac)
# The thin jar holds our two classes and a manifest whose Class-Path names every jar of lib/ by
# absolute path; only this jar is staged per job (see src/hybridmix/ci/flink/FlinkJobServer.java).
SRC_DIGEST=$( (cd "$HERE/src" && find . -name '*.java' | sort | xargs sha256sum; ls "$JS/lib"; echo "$JS") | sha256sum | cut -c1-16)
if [[ -f "$THIN_JAR" && "$(cat "$JS/jar.digest" 2>/dev/null)" == "$SRC_DIGEST" ]]; then
  say "launcher jar: up to date"
else
  rm -rf "$JS/classes" && mkdir -p "$JS/classes"
  find "$HERE/src" -name '*.java' > "$JS/sources.txt"
  javac -nowarn --release 11 -cp "$JS/lib/*" -d "$JS/classes" @"$JS/sources.txt" 2> "$LOG/javac.log" \
    || { cat "$LOG/javac.log" >&2; die "javac failed"; }
  "$PY" - "$JS/lib" "$JS/classes" "$THIN_JAR.tmp" <<'PYEOF'
import pathlib, sys, zipfile
lib, classes, out = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]), sys.argv[3]
# absolute, percent-encoded paths: valid relative-URL references wherever the jar is copied to
cp = " ".join(p.as_uri()[len("file://"):] for p in sorted(lib.glob("*.jar")))
def wrap(line):  # manifest lines are at most 72 bytes; continuation lines start with a space
    b = line.encode(); parts = [b[:72]]; b = b[72:]
    while b:
        parts.append(b" " + b[:71]); b = b[71:]
    return b"\r\n".join(parts) + b"\r\n"
mf = b"".join(wrap(l) for l in ("Manifest-Version: 1.0", "Created-By: hybridmix .ci/flink/setup.sh",
                                 "Main-Class: hybridmix.ci.flink.FlinkJobServer", "Class-Path: " + cp)) + b"\r\n"
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/MANIFEST.MF", mf)
    for f in sorted(p for p in classes.rglob("*") if p.is_file()):
        z.write(f, f.relative_to(classes).as_posix())
PYEOF
  mv "$THIN_JAR.tmp" "$THIN_JAR"
  echo "$SRC_DIGEST" > "$JS/jar.digest"
  say "launcher jar: built $THIN_JAR ($(du -h "$THIN_JAR" | cut -f1))"
fi

# ---------------------------------------------------------------- 3. Flink distribution (PyPI)
DL="$WORK/downloads"
LIBS_FILE="$DL/apache-flink-libraries-$FLINK_VERSION.tar.gz"
if [[ ! -f "$DL/libs.done" ]]; then
  say "PyPI: pip download apache-flink-libraries==$FLINK_VERSION (sdist, ~230 MB) ..."
  echo "apache-flink-libraries==$FLINK_VERSION --hash=sha256:$LIBS_SHA256" > "$DL/libs.txt"
  PIP_NO_CACHE_DIR=1 "$PY" -m pip download -q --no-deps --no-binary :all: --require-hashes \
      -r "$DL/libs.txt" -d "$DL" > "$LOG/pip-libs.log" 2>&1 \
    || { tail -20 "$LOG/pip-libs.log" >&2; die "pip download apache-flink-libraries failed"; }
  [[ -f "$LIBS_FILE" ]] || die "pip did not produce $LIBS_FILE"
  touch "$DL/libs.done"
fi
if [[ ! -f "$DL/wheel.done" ]]; then
  say "PyPI: pip download apache-flink==$FLINK_VERSION (wheel, for bin/ and conf/) ..."
  echo "apache-flink==$FLINK_VERSION --hash=sha256:$WHEEL_SHA256" > "$DL/wheel.txt"
  PIP_NO_CACHE_DIR=1 "$PY" -m pip download -q --no-deps --only-binary :all: --require-hashes \
      --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
      -r "$DL/wheel.txt" -d "$DL" > "$LOG/pip-wheel.log" 2>&1 \
    || { tail -20 "$LOG/pip-wheel.log" >&2; die "pip download apache-flink failed"; }
  touch "$DL/wheel.done"
fi
WHEEL_FILE=$(ls "$DL"/apache_flink-"$FLINK_VERSION"-*.whl | head -1)

if [[ -f "$FLINK/.assembled" ]]; then
  say "Flink $FLINK_VERSION distribution: present"
else
  say "Flink $FLINK_VERSION distribution: assembling ..."
  STAGE="$WORK/flink.assembling"
  rm -rf "$STAGE" && mkdir -p "$STAGE/dist" "$STAGE/wheel"
  tar -xzf "$LIBS_FILE" -C "$STAGE" "apache-flink-libraries-$FLINK_VERSION/deps"
  "$PY" -m zipfile -e "$WHEEL_FILE" "$STAGE/wheel"
  cp -r "$STAGE/apache-flink-libraries-$FLINK_VERSION/deps/." "$STAGE/dist/"
  mkdir -p "$STAGE/dist/bin" "$STAGE/dist/log"
  cp -r "$STAGE/wheel/pyflink/bin/." "$STAGE/dist/bin/"
  cp -r "$STAGE/wheel/pyflink/conf" "$STAGE/dist/conf"
  chmod +x "$STAGE/dist/bin/"*.sh "$STAGE/dist/bin/flink"
  for f in lib/flink-dist-$FLINK_VERSION.jar bin/bash-java-utils.jar bin/start-cluster.sh conf/config.yaml; do
    [[ -f "$STAGE/dist/$f" ]] || die "assembled Flink lacks $f"
  done
  cp "$STAGE/dist/conf/config.yaml" "$STAGE/dist/conf/config.yaml.dist"
  rm -rf "$FLINK" && mv "$STAGE/dist" "$FLINK" && rm -rf "$STAGE"
  touch "$FLINK/.assembled"
  say "Flink $FLINK_VERSION distribution: $FLINK ($(du -sh "$FLINK" | cut -f1))"
fi

# Config for a 2-core, 24 GiB CI machine: one TaskManager with 2 slots (the Python SDK workers run
# in the submitting process with LOOPBACK, so the TaskManager needs memory only for Flink's own
# shuffles and sorts). The JVM flags come from the distribution's own config (Java 17 needs them).
JAVA_OPTS_ALL=$(sed -n 's/^ *all: *\(--add-.*\)$/\1/p' "$FLINK/conf/config.yaml.dist")
[[ -n "$JAVA_OPTS_ALL" ]] || die "no env.java.opts.all in $FLINK/conf/config.yaml.dist"
cat > "$FLINK/conf/config.yaml" <<EOF
# written by .ci/flink/setup.sh (the distribution's own file is config.yaml.dist)
env:
  java:
    opts:
      all: $JAVA_OPTS_ALL
      # The JobManager reads a submitted JobGraph with Java deserialization, one stack frame per
      # link; a run's ~100 stages overflowed the default 1 MB thread stack (StackOverflowError in
      # JobSubmitHandler, "Internal server error" at the client), not on every submission.
      jobmanager: -Xss16m
  pid:
    dir: $RUN
jobmanager:
  bind-host: localhost
  rpc:
    address: localhost
    port: 6123
  memory:
    process:
      size: 1600m
  execution:
    failover-strategy: region
taskmanager:
  bind-host: localhost
  host: localhost
  numberOfTaskSlots: 2
  memory:
    process:
      size: 6144m
    # An incremental run (dedup.against) has more shuffles than Flink's default share of buffers
    # serves at once ("Insufficient number of network buffers: required 512, but only 206").
    network:
      min: 1024m
      max: 1536m
parallelism:
  default: 2
rest:
  address: localhost
  bind-address: localhost
  port: $REST_PORT
io:
  tmp:
    dirs: $WORK/tmp
blob:
  storage:
    directory: $WORK/tmp/blob
web:
  tmpdir: $WORK/tmp/web
# Beam's Flink runner can touch its user classloader after a job ends; Flink would then fail the job.
classloader:
  check-leaked-classloader: false
EOF
echo localhost > "$FLINK/conf/workers"
echo "localhost:$REST_PORT" > "$FLINK/conf/masters"

# ---------------------------------------------------------------- 4. cluster
overview() { curl -sf --max-time 3 "$REST/overview" 2>/dev/null; }
# cluster_has registered|free: a TaskManager is registered (and, with "free", has a free slot)
cluster_has() {
  overview | "$PY" -c 'import json, sys; o = json.load(sys.stdin)
sys.exit(0 if o["taskmanagers"] >= 1 and (sys.argv[1] != "free" or o["slots-available"] > 0) else 1)' "$1" 2>/dev/null
}
# flink_alive all|any: the JobManager and TaskManager PIDs Flink recorded in $RUN are alive
flink_alive() {
  local kind n=0 p
  for kind in standalonesession taskexecutor; do
    for p in $(cat "$RUN"/flink-*-"$kind".pid 2>/dev/null); do
      if kill -0 "$p" 2>/dev/null; then n=$((n + 1)); break; fi
    done
  done
  if [[ $1 == all ]]; then (( n == 2 )); else (( n > 0 )); fi
}
if flink_alive all && cluster_has registered; then
  say "Flink cluster: already running ($REST)"
else
  if flink_alive any; then
    say "Flink cluster: partly running or not answering; stopping it first"
    "$HERE/stop.sh"
  fi
  port_open "$REST_PORT" && die "port $REST_PORT is in use by a process this script did not start"
  T=$(now_ms)
  say "Flink cluster: bin/start-cluster.sh ..."
  FLINK_CONF_DIR="$FLINK/conf" "$FLINK/bin/start-cluster.sh" > "$LOG/start-cluster.log" 2>&1 \
    || { cat "$LOG/start-cluster.log" >&2; die "start-cluster.sh failed"; }
  deadline=$(( $(date +%s) + CLUSTER_TIMEOUT ))
  until cluster_has free; do
    problem=""
    flink_alive all || problem="a Flink process exited"
    (( $(date +%s) >= deadline )) && problem="not ready (1 TaskManager with a free slot) within ${CLUSTER_TIMEOUT}s"
    if [[ -n "$problem" ]]; then
      echo "--- $REST/overview: $(overview || echo unreachable)" >&2
      for f in "$FLINK"/log/*.log "$FLINK"/log/*.out; do [[ -s "$f" ]] && { echo "--- $f" >&2; tail -30 "$f" >&2; }; done
      die "Flink cluster: $problem (logs: $FLINK/log; stop leftovers with $HERE/stop.sh)"
    fi
    sleep 0.5
  done
  say "Flink cluster: ready in $(since "$T") s: $(overview)"
fi

# ---------------------------------------------------------------- 5. job server
if pid_alive "$JS_PID" && port_open "$JOB_PORT"; then
  say "job server: already running (pid $(cat "$JS_PID"))"
else
  rm -f "$JS_PID"
  for p in "$JOB_PORT" "$ARTIFACT_PORT" "$EXPANSION_PORT"; do
    port_open "$p" && die "port $p is in use by a process this script did not start"
  done
  T=$(now_ms)
  # HYBRIDMIX_FLINK_THIN_STAGING=0: Beam's own driver, which stages the whole classpath (~150 MB) per job
  if [[ "${HYBRIDMIX_FLINK_THIN_STAGING:-1}" == 0 ]]; then
    JS_MAIN=org.apache.beam.runners.flink.FlinkJobServerDriver
  else
    JS_MAIN=hybridmix.ci.flink.FlinkJobServer
  fi
  say "job server: starting $JS_MAIN on port $JOB_PORT ..."
  mkdir -p "$WORK/tmp/artifacts"
  # java.util.logging (slf4j-jdk14): one line per record; FlinkPipelineRunner would log every job's
  # final metrics as ~17,000 lines of JSON at INFO, and the Flink client its whole configuration.
  cat > "$JS/logging.properties" <<'PROPS'
handlers = java.util.logging.ConsoleHandler
.level = INFO
java.util.logging.ConsoleHandler.level = ALL
java.util.logging.SimpleFormatter.format = %1$tF %1$tT %4$s %3$s: %5$s%6$s%n
org.apache.beam.runners.flink.FlinkPipelineRunner.level = WARNING
org.apache.flink.configuration.GlobalConfiguration.level = WARNING
PROPS
  nohup java -Xmx1g -Xss16m -Djava.io.tmpdir="$WORK/tmp" -Djava.util.logging.config.file="$JS/logging.properties" \
      -cp "$THIN_JAR" "$JS_MAIN" \
      --flink-master="localhost:$REST_PORT" --flink-conf-dir="$FLINK/conf" \
      --job-host=localhost --job-port="$JOB_PORT" --artifact-port="$ARTIFACT_PORT" \
      --expansion-port="$EXPANSION_PORT" --artifacts-dir="$WORK/tmp/artifacts" \
      > "$JS_LOG" 2>&1 < /dev/null &
  echo $! > "$JS_PID"
  deadline=$(( $(date +%s) + JOBSERVER_TIMEOUT ))
  until port_open "$JOB_PORT"; do
    if ! pid_alive "$JS_PID"; then
      tail -40 "$JS_LOG" >&2; die "job server exited (log: $JS_LOG)"
    fi
    if (( $(date +%s) >= deadline )); then
      tail -40 "$JS_LOG" >&2; die "job server did not listen on port $JOB_PORT within ${JOBSERVER_TIMEOUT}s"
    fi
    sleep 0.2
  done
  say "job server: ready in $(since "$T") s (pid $(cat "$JS_PID"), log $JS_LOG)"
fi

cat <<EOF
Flink $FLINK_VERSION cluster + Beam $BEAM_VERSION job server are up (setup took $(since "$T0") s):
  Flink REST / web UI:  $REST
  Beam job endpoint:    localhost:$JOB_PORT   (artifacts localhost:$ARTIFACT_PORT, expansion localhost:$EXPANSION_PORT)
  run the Flink test:   HYBRIDMIX_FLINK_JOB_ENDPOINT=localhost:$JOB_PORT HYBRIDMIX_FLINK_REST=$REST .venv/bin/python -m pytest -q tests/pipelines/test_flink.py
  stop:                 ${HYBRIDMIX_FLINK_HOME:+HYBRIDMIX_FLINK_HOME=$WORK }$HERE/stop.sh
EOF
