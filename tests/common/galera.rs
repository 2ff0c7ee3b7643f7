//! A private 3-node MariaDB Galera cluster for one test, on loopback: each
//! node a rig server (mariadb.rs) with its own datadir, socket and ports,
//! replicating through galera-4; killed and deleted on drop.
//!
//! The nodes run as the `mysql` user: the joiners' state transfer
//! (`wsrep_sst_method=rsync`) runs an rsync daemon, which drops to `nobody`
//! when started as root and then cannot write the datadir ("Permission
//! denied"). So each node's directory belongs to `mysql`; the temp dir
//! above it only needs to be traversable (TempDir makes it 0755).
//!
//! The nodes read no option file (--no-defaults), but the state transfer
//! scripts still read /etc/mysql's (for settings such as tmpdir): Debian's
//! defaults do not get in the way.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::Conn;

use super::mariadb::{
    counter_rows, example_sql, exec_statements, install_datadir, mariadbd_command,
    module_options_for, root_conn_at, DATABASE, ERROR_LOG, TABLE,
};
use super::{free_port, group_alive, signal_group, wait_for, TempDir};

/// How many nodes a cluster has.
pub const NODES: usize = 3;

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
/// How long a cluster (or a node rejoining it) may take to be Synced: it
/// usually takes 15-30 s here, but the machine may be busy with a build.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often waiting asks the nodes for their state.
const POLL: Duration = Duration::from_millis(250);
/// How many lines of each error log a failure shows.
const LOG_TAIL: usize = 40;

/// One node: its directory (datadir, socket, error log, tmp/) and ports.
struct Node {
    dir: PathBuf,
    /// Client port (tcp_address).
    port: u16,
    /// Group communication (gmcast.listen_addr, wsrep_node_address).
    gmcast_port: u16,
    /// Incremental state transfer receiver (ist.recv_addr).
    ist_port: u16,
    /// Full state transfer receiver: the joiner's rsync daemon
    /// (wsrep_sst_receive_address).
    sst_port: u16,
    child: Option<Child>,
}

impl Node {
    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    fn error_log(&self) -> String {
        // Lossy: a log is not always valid UTF-8.
        let log = fs::read(self.dir.join(ERROR_LOG)).unwrap_or_default();
        String::from_utf8_lossy(&log).into_owned()
    }
}

/// What a node says about itself and the cluster (SHOW STATUS 'wsrep_%').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// wsrep_cluster_size: members of the node's current view.
    pub cluster_size: usize,
    /// wsrep_local_state_comment: Joining, Donor/Desynced, Synced, ...
    pub state: String,
    /// wsrep_ready: the node accepts queries.
    pub ready: bool,
    /// wsrep_cluster_status = Primary: the node's view has quorum.
    pub primary: bool,
}

impl NodeState {
    fn synced_in(&self, cluster_size: usize) -> bool {
        self.cluster_size == cluster_size && self.state == "Synced" && self.ready && self.primary
    }
}

pub struct Galera {
    nodes: Vec<Node>,
    /// uid and gid of `mysql`, which the nodes run as.
    owner: (u32, u32),
    // Last: removed after the nodes are gone.
    dir: TempDir,
}

impl Galera {
    /// Starts [`NODES`] nodes (the first bootstraps the cluster, the others
    /// join it by state transfer), waits until each is Synced in a cluster
    /// of all of them, then creates the counter database once, exactly as
    /// the README tells an admin to (examples/schema.sql and grants.sql,
    /// whose InnoDB tables Galera requires), and checks that it reached
    /// every node. Panics with the nodes' error logs if that takes longer
    /// than 120 s.
    pub fn start() -> Galera {
        // Twelve ports are picked in advance: another test may take one
        // before its node binds it, and the node exits. Then start over on
        // new ones, as MariaDb::launch does. (Galera does not always say
        // "Address already in use": when its gcomm thread dies first, it
        // says "Failed to set thread schedparams ... No such process".)
        const ATTEMPTS: usize = 3;
        for attempt in 1.. {
            let mut cluster = Galera::prepare();
            match cluster.bring_up(Instant::now() + DEADLINE) {
                Ok(()) => return cluster,
                Err(what) if attempt < ATTEMPTS && cluster.exited().is_some() => {
                    eprintln!("galera: {what}; starting over on other ports");
                    eprint!("{}", cluster.errors());
                }
                Err(what) => cluster.fail(&what),
            }
        }
        unreachable!()
    }

    /// The nodes' directories (owned by `mysql`) and ports; nothing runs.
    fn prepare() -> Galera {
        let owner = mysql_user();
        let dir = TempDir::new("galera");
        let nodes = (0..NODES)
            .map(|i| {
                let node_dir = dir.path().join(format!("node{i}"));
                for d in [
                    node_dir.clone(),
                    node_dir.join("data"),
                    node_dir.join("tmp"),
                ] {
                    fs::create_dir_all(&d).unwrap();
                    std::os::unix::fs::chown(&d, Some(owner.0), Some(owner.1))
                        .unwrap_or_else(|e| panic!("chown {}: {e}", d.display()));
                }
                Node {
                    dir: node_dir,
                    port: free_port(),
                    gmcast_port: free_port(),
                    ist_port: free_port(),
                    sst_port: free_port(),
                    child: None,
                }
            })
            .collect();
        Galera { nodes, owner, dir }
    }

    /// Bootstraps the cluster on node 0, has the others join, and creates
    /// the counter database, all before `deadline`.
    fn bring_up(&mut self, deadline: Instant) -> Result<(), String> {
        // Only the first node needs a system database: the others receive
        // the first one's datadir, whole, by state transfer.
        let first = &self.nodes[0];
        install_datadir(&first.datadir(), &first.dir.join("tmp"), "mysql");
        self.launch(0, &["--wsrep-new-cluster".to_string()]);
        self.synced_by(deadline)?;
        for i in 1..NODES {
            self.launch(i, &[]);
        }
        self.synced_by(deadline)?;

        let mut conn = self.root_conn(0).map_err(|e| format!("node 0: {e}"))?;
        exec_statements(&mut conn, &example_sql("schema.sql"));
        exec_statements(&mut conn, &example_sql("grants.sql"));
        for i in 0..NODES {
            wait_for(deadline.saturating_duration_since(Instant::now()), || {
                let n: usize = self
                    .root_conn(i)
                    .ok()?
                    .query_first(format!(
                        "SELECT COUNT(*) FROM information_schema.tables \
                         WHERE table_schema = '{DATABASE}' \
                         AND table_name IN ('{TABLE}', '{TABLE}_batches')"
                    ))
                    .ok()??;
                (n == 2).then_some(())
            })
            .ok_or_else(|| format!("node {i} did not get the counter tables"))?;
        }
        Ok(())
    }

    /// Node `i`'s client port (e.g. for a proxy in front of it).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// "127.0.0.1:port" of node `i`, for bw_counter.mysql_server.
    pub fn tcp_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s unix socket.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.nodes[i].socket()
    }

    /// A root connection to node `i` (over its socket).
    pub fn root_conn(&self, i: usize) -> mysql::Result<Conn> {
        root_conn_at(&self.nodes[i].socket())
    }

    /// The pid of node `i`'s mariadbd; panics if it is not running.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().expect("node running").id()
    }

    /// Node `i`'s error log so far (e.g. to see how it rejoined).
    pub fn error_log(&self, i: usize) -> String {
        self.nodes[i].error_log()
    }

    /// What node `i` says about itself and the cluster.
    pub fn state(&self, i: usize) -> mysql::Result<NodeState> {
        let status: Vec<(String, String)> = self.root_conn(i)?.query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN \
             ('wsrep_cluster_size', 'wsrep_local_state_comment', \
              'wsrep_ready', 'wsrep_cluster_status')",
        )?;
        let value = |name: &str| {
            status
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map_or("", |(_, v)| v.as_str())
        };
        Ok(NodeState {
            cluster_size: value("wsrep_cluster_size").parse().unwrap_or(0),
            state: value("wsrep_local_state_comment").to_string(),
            ready: value("wsrep_ready") == "ON",
            primary: value("wsrep_cluster_status") == "Primary",
        })
    }

    /// Rows of the counter table on node `i`: (vhost, day, in, out),
    /// sorted. The read waits until the node has applied everything the
    /// cluster committed before it (wsrep_sync_wait), so a row written on
    /// another node is there.
    pub fn rows(&self, i: usize) -> Vec<(String, String, u64, u64)> {
        let mut conn = self.root_conn(i).expect("root connection");
        conn.query_drop("SET SESSION wsrep_sync_wait = 1")
            .expect("wsrep_sync_wait");
        counter_rows(&mut conn)
    }

    /// The bw_counter.* lines for the cluster, over TCP, as the
    /// least-privilege user of examples/grants.sql, with the nodes of
    /// `order` as a list: `bw_counter.mysql_server = ( "127.0.0.1:p2", ... )`.
    pub fn module_options(&self, order: &[usize]) -> String {
        let servers: Vec<String> = order
            .iter()
            .map(|&i| format!("\"{}\"", self.tcp_address(i)))
            .collect();
        module_options_for(&format!("( {} )", servers.join(", ")))
    }

    /// SIGKILLs node `i` (and whatever it runs, such as a state transfer),
    /// as a crash would, and waits until they are gone. The others notice
    /// after a few seconds (evs.suspect_timeout) and go on without it.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node running");
        stop_group(&mut child);
    }

    /// Starts node `i` again on its datadir and ports, after
    /// [`Galera::kill`], and waits until it is back in the cluster
    /// ([`Galera::wait_synced`]).
    ///
    /// Like systemd's galera_recovery, it first asks the datadir what it
    /// has committed (`--wsrep-recover`, a fraction of a second) and starts
    /// the node from there: the killed node's grastate.dat says seqno -1
    /// (and safe_to_bootstrap 0, which only matters for bootstrapping), so
    /// a plain start would take a full state transfer (rsync), during which
    /// the donor flushes and pauses. Tried here: that works too, but in
    /// one of about 35 rounds (with a CI build running) the donor stayed
    /// Donor/Desynced, not ready, for 2 minutes after the joiner was
    /// Synced, as in galera issue #133 ("killed and brought back without
    /// recovery"). Knowing its position, the node takes only the
    /// write-sets it missed (incremental transfer), and the donor neither
    /// flushes nor pauses.
    pub fn restart(&mut self, i: usize) {
        let position = self.recover(i);
        self.launch(i, &[format!("--wsrep-start-position={position}")]);
        self.wait_synced();
    }

    /// The "uuid:seqno" node `i`'s datadir has committed up to, from
    /// `mariadbd --wsrep-recover` (which reads it from InnoDB and exits).
    fn recover(&mut self, i: usize) -> String {
        const MARK: &str = "WSREP: Recovered position: ";
        let logged_before = self.error_log(i).len();
        self.launch(i, &["--wsrep-recover".to_string()]);
        let mut child = self.nodes[i].child.take().expect("recovery running");
        let exited = wait_for(DEADLINE, || child.try_wait().ok().flatten());
        if exited.is_none() {
            stop_group(&mut child);
        }
        let log = self.error_log(i);
        let position = log
            .get(logged_before..)
            .and_then(|new| new.rsplit_once(MARK))
            .and_then(|(_, rest)| rest.lines().next())
            .map(|line| line.trim().to_string());
        match (exited, position) {
            (Some(status), Some(position)) if status.success() => position,
            (exited, _) => self.fail(&format!(
                "node {i}: --wsrep-recover found no position (exit: {exited:?})"
            )),
        }
    }

    /// Waits until every running node is Synced, ready and in the primary
    /// component, in a cluster of all the running nodes; panics with the
    /// nodes' error logs after 120 s, or at once if a node exited.
    pub fn wait_synced(&mut self) {
        if let Err(what) = self.synced_by(Instant::now() + DEADLINE) {
            self.fail(&what);
        }
    }

    /// [`Galera::wait_synced`], with what went wrong as an error.
    fn synced_by(&mut self, deadline: Instant) -> Result<(), String> {
        let running: Vec<usize> = (0..NODES)
            .filter(|&i| self.nodes[i].child.is_some())
            .collect();
        let synced = wait_for(deadline.saturating_duration_since(Instant::now()), || {
            if let Some((i, status)) = self.exited() {
                return Some(Err(format!("node {i} exited: {status}")));
            }
            let synced = running
                .iter()
                .all(|&i| self.state(i).is_ok_and(|s| s.synced_in(running.len())));
            if !synced {
                // Joining takes seconds: spare the busy nodes a poll every
                // 50 ms.
                std::thread::sleep(POLL);
            }
            synced.then_some(Ok(()))
        });
        synced.unwrap_or_else(|| {
            Err(format!(
                "nodes {running:?} not Synced in a cluster of {} in time",
                running.len()
            ))
        })
    }

    /// Spawns node `i`'s mariadbd with `extra` options (e.g. to
    /// bootstrap the cluster).
    fn launch(&mut self, i: usize, extra: &[String]) {
        let node = &self.nodes[i];
        assert!(node.child.is_none(), "node {i} already running");
        let members: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.gmcast_port))
            .collect();
        let mut cmd = mariadbd_command(
            &node.dir,
            &node.datadir(),
            &node.socket(),
            node.port,
            "mysql",
        );
        // Spawned as mysql rather than with mariadbd's own --user switch:
        // a process that changes its uid loses PR_SET_PDEATHSIG, and the
        // node would outlive a killed test. std switches the uid before it
        // runs own_group_dies_with_test's pre_exec, so the signal stays.
        cmd.uid(self.owner.0).gid(self.owner.1).args([
            "--wsrep-on=ON",
            &format!("--wsrep-provider={PROVIDER}"),
            "--wsrep-cluster-name=bwc-test",
            &format!("--wsrep-cluster-address=gcomm://{}", members.join(",")),
            &format!("--wsrep-node-name=node{i}"),
            &format!("--wsrep-node-address=127.0.0.1:{}", node.gmcast_port),
            &format!("--wsrep-node-incoming-address=127.0.0.1:{}", node.port),
            "--wsrep-sst-method=rsync",
            &format!("--wsrep-sst-receive-address=127.0.0.1:{}", node.sst_port),
            &format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};\
                     ist.recv_addr=127.0.0.1:{};gcache.size=32M",
                node.gmcast_port, node.ist_port
            ),
            // What Galera requires of the server.
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
        ]);
        cmd.args(extra);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn mariadbd for node {i}: {e}"));
        self.nodes[i].child = Some(child);
    }

    /// A running node whose mariadbd has exited, and how.
    fn exited(&mut self) -> Option<(usize, String)> {
        self.nodes.iter_mut().enumerate().find_map(|(i, node)| {
            let status = match node.child.as_mut()?.try_wait() {
                Ok(None) => return None,
                Ok(Some(status)) => status.to_string(),
                Err(e) => e.to_string(),
            };
            Some((i, status))
        })
    }

    /// The [ERROR] lines of the nodes' error logs.
    fn errors(&self) -> String {
        let mut errors = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for line in node.error_log().lines().filter(|l| l.contains("[ERROR]")) {
                errors.push_str(&format!("node {i}: {line}\n"));
            }
        }
        errors
    }

    /// Panics with `what`, each node's state and its error log's tail.
    fn fail(&self, what: &str) -> ! {
        let mut report = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let state = match (&node.child, self.state(i)) {
                (None, _) => "not running".to_string(),
                (Some(_), Ok(s)) => format!("{s:?}"),
                (Some(_), Err(e)) => format!("no answer: {e}"),
            };
            let log = node.error_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            report.push_str(&format!(
                "\n--- node {i} ({state}), {}:\n{tail}\n",
                node.dir.join(ERROR_LOG).display()
            ));
        }
        panic!("galera: {what}{report}");
    }
}

impl Drop for Galera {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                stop_group(&mut child);
            }
        }
    }
}

/// SIGKILLs the process group `child` leads and waits until it is gone.
fn stop_group(child: &mut Child) {
    let pid = child.id();
    signal_group(pid, libc::SIGKILL);
    let _ = child.wait();
    if wait_for(Duration::from_secs(10), || {
        (!group_alive(pid)).then_some(())
    })
    .is_none()
    {
        eprintln!("galera: processes of group {pid} still alive after SIGKILL");
    }
}

/// uid and gid of the `mysql` user (mariadb-server creates it).
fn mysql_user() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "mysql").then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(uid, gid)| Some((uid?, gid?)))
        .expect("no mysql user: make test installs mariadb-server, which creates it")
}
