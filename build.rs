//! Generates the lighttpd bindings and compiles the C shim against the
//! headers of the exact lighttpd release this module targets.
//!
//! Inputs (environment):
//! - `LIGHTTPD_SRC`: a lighttpd source tree (its `src/` holds `plugin.h`).
//!   Without it, `lighttpd-headers/upstream/current`, which
//!   `lighttpd-headers/fetch.sh` fills from Debian's source package.
//! - `LIGHTTPD_CONFIG_H`: the `config.h` of the lighttpd build to match. By
//!   default `$LIGHTTPD_SRC/config.h` (or `build/config.h`) when the tree was
//!   configured, else `lighttpd-headers/debian-config.h`.
//! - `LIGHTTPD_VERSION_ID`: override of the plugin version id lighttpd
//!   checks (e.g. `0x10445`). Default: `LIGHTTPD_VERSION_ID` from that
//!   config.h, else computed from the tree's version the way
//!   `LIGHTTPD_BUILD_SYSTEM` (`autotools`, the default and what Debian uses;
//!   `meson`; `cmake`) computes it.
//!
//! Outputs: `$OUT_DIR/bindings.rs` and `$OUT_DIR/lighttpd_version.rs` (the
//! plugin version id), both included by `src/ffi.rs`, and the static
//! `bwcshim` library.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const FETCH_HINT: &str = "lighttpd-headers/fetch.sh";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for var in [
        "LIGHTTPD_SRC",
        "LIGHTTPD_CONFIG_H",
        "LIGHTTPD_VERSION_ID",
        "LIGHTTPD_BUILD_SYSTEM",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for f in ["wrapper.h", "shim.h", "shim.c", "debian-config.h"] {
        println!("cargo:rerun-if-changed=lighttpd-headers/{f}");
    }

    let tree = lighttpd_tree(&manifest_dir);
    let src = tree.join("src");
    println!("cargo:rerun-if-changed={}", src.join("plugin.h").display());

    let version = tree_version(&tree);
    let config_h = config_h(&manifest_dir, &tree);
    println!("cargo:rerun-if-changed={}", config_h.display());
    let version_id = version_id(&version, &config_h);

    // first.h includes "config.h" by that name when HAVE_CONFIG_H is set: give
    // it the chosen file under that name, ahead of everything else.
    let cfg_dir = out_dir.join("config");
    fs::create_dir_all(&cfg_dir).unwrap();
    let mut config_text = fs::read_to_string(&config_h)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", config_h.display()));
    config_text.push_str(&format!(
        "\n#ifndef LIGHTTPD_VERSION_ID\n#define LIGHTTPD_VERSION_ID {version_id:#x}\n#endif\n"
    ));
    write_if_changed(&cfg_dir.join("config.h"), &config_text);

    let headers_dir = manifest_dir.join("lighttpd-headers");
    let include_dirs = [cfg_dir.clone(), headers_dir.clone(), src.clone()];

    generate_bindings(&headers_dir, &include_dirs, &out_dir);
    compile_shim(&headers_dir, &include_dirs, &src);
    emit_version(&out_dir, &version, version_id, &config_text);
}

/// The lighttpd source tree: `$LIGHTTPD_SRC`, else what fetch.sh fetched.
fn lighttpd_tree(manifest_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("LIGHTTPD_SRC").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.join("src/plugin.h").is_file() {
            fail(&format!(
                "LIGHTTPD_SRC={} is not a lighttpd source tree: {} does not exist.\n\
                 Point LIGHTTPD_SRC at the top of an unpacked lighttpd-1.4.x source \
                 (the folder that holds src/plugin.h), or unset it and run {FETCH_HINT}.",
                dir.display(),
                dir.join("src/plugin.h").display()
            ));
        }
        return dir;
    }
    let fetched = manifest_dir.join("lighttpd-headers/upstream/current");
    println!("cargo:rerun-if-changed={}", fetched.display());
    if fetched.join("src/plugin.h").is_file() {
        return fetched;
    }
    fail(&format!(
        "no lighttpd headers found.\n\
         Run `{FETCH_HINT}` (fetches the source of the installed lighttpd's version \
         from Debian's source package into lighttpd-headers/upstream/), or `{FETCH_HINT} 1.4.69` \
         for a given version, or set LIGHTTPD_SRC=/path/to/lighttpd-1.4.x (a tree whose \
         src/ holds plugin.h). `make build` does the first for you."
    ))
}

/// "1.4.69" from the tree's build files (configure.ac, else meson.build,
/// else CMakeLists.txt).
fn tree_version(tree: &Path) -> String {
    type Parser = fn(&str) -> Option<String>;
    let candidates: [(&str, Parser); 3] = [
        ("configure.ac", |t| {
            // AC_INIT([lighttpd],[1.4.69],...)
            let rest = t.split("AC_INIT(").nth(1)?;
            let second = rest.split(',').nth(1)?;
            Some(
                second
                    .trim()
                    .trim_matches(|c| c == '[' || c == ']')
                    .to_string(),
            )
        }),
        ("meson.build", |t| {
            // project('lighttpd', 'c', version: '1.4.69', ...)
            let rest = t.split("version:").nth(1)?;
            Some(rest.split('\'').nth(1)?.to_string())
        }),
        ("CMakeLists.txt", |t| {
            // project(lighttpd VERSION 1.4.69 LANGUAGES C)
            let rest = t.split("project(lighttpd VERSION").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        }),
    ];
    for (file, parse) in candidates {
        let path = tree.join(file);
        if let Ok(text) = fs::read_to_string(&path) {
            println!("cargo:rerun-if-changed={}", path.display());
            if let Some(v) = parse(&text).filter(|v| parse_version(v).is_some()) {
                return v;
            }
        }
    }
    fail(&format!(
        "cannot tell the lighttpd version of {}: none of configure.ac, meson.build, \
         CMakeLists.txt names one. Run {FETCH_HINT} again, or set LIGHTTPD_VERSION_ID.",
        tree.display()
    ))
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let t = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(t)
}

/// Writes `text` unless the file holds it already: bindgen tells cargo to
/// watch every header it read, this generated config.h included, and a
/// file rewritten on every run made every build rebuild the crate.
fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

fn config_h(manifest_dir: &Path, tree: &Path) -> PathBuf {
    if let Some(p) = env::var_os("LIGHTTPD_CONFIG_H").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            fail(&format!("LIGHTTPD_CONFIG_H={} does not exist", p.display()));
        }
        return p;
    }
    for configured in ["config.h", "build/config.h"] {
        let p = tree.join(configured);
        if p.is_file() {
            return p;
        }
    }
    manifest_dir.join("lighttpd-headers/debian-config.h")
}

/// The `plugin.version` lighttpd compares with its own LIGHTTPD_VERSION_ID.
fn version_id(version: &str, config_h: &Path) -> u32 {
    if let Ok(v) = env::var("LIGHTTPD_VERSION_ID") {
        if !v.is_empty() {
            return parse_int(&v).unwrap_or_else(|| {
                fail(&format!(
                    "LIGHTTPD_VERSION_ID={v} is not a number (e.g. 0x10445)"
                ))
            });
        }
    }
    if let Ok(text) = fs::read_to_string(config_h) {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("#define") && words.next() == Some("LIGHTTPD_VERSION_ID") {
                if let Some(id) = words.next().and_then(parse_int) {
                    return id;
                }
            }
        }
    }
    let (major, minor, patch) = parse_version(version).unwrap();
    let system = env::var("LIGHTTPD_BUILD_SYSTEM").unwrap_or_else(|_| "autotools".into());
    match system.as_str() {
        // configure.ac: m4_format([0x%x%02x%02x], major, minor, patch)
        "autotools" | "" => (major << 16) | (minor << 8) | patch,
        // src/meson.build and src/CMakeLists.txt: '0x104' + decimal patch
        "meson" | "cmake" => parse_int(&format!("0x{major:x}{minor:02x}{patch}"))
            .unwrap_or_else(|| fail(&format!("cannot form a {system} version id for {version}"))),
        other => fail(&format!(
            "LIGHTTPD_BUILD_SYSTEM={other}: expected autotools, meson or cmake"
        )),
    }
}

fn parse_int(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn clang_args(include_dirs: &[PathBuf]) -> Vec<String> {
    let mut args = vec!["-DHAVE_CONFIG_H".to_string()];
    args.extend(include_dirs.iter().map(|d| format!("-I{}", d.display())));
    args
}

fn generate_bindings(headers_dir: &Path, include_dirs: &[PathBuf], out_dir: &Path) {
    let bindings = bindgen::Builder::default()
        .header(headers_dir.join("wrapper.h").to_string_lossy())
        .clang_args(clang_args(include_dirs))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // Types the hook layer reads; their dependencies come along.
        .allowlist_type("plugin")
        .allowlist_type("plugin_data_base")
        .allowlist_type("server")
        .allowlist_type("connection")
        .allowlist_type("request_st")
        .allowlist_type("handler_t")
        .allowlist_type("http_version_t")
        .allowlist_type("config_plugin_keys_t")
        .allowlist_type("config_plugin_value_t")
        .allowlist_type("config_values_type_t")
        .allowlist_type("config_scope_type_t")
        .allowlist_type("data_config")
        .allowlist_type("data_string")
        .allowlist_type("data_array")
        .allowlist_type("data_integer")
        .allowlist_type("data_type_t")
        .allowlist_function("config_plugin_values_init")
        .allowlist_function("config_check_cond")
        .allowlist_function("bwc_.*")
        .allowlist_var("log_epoch_secs")
        .allowlist_var("log_monotonic_secs")
        .allowlist_var("HANDLER_.*")
        .allowlist_var("HTTP_VERSION_.*")
        .allowlist_var("HTTP_METHOD_.*")
        .allowlist_var("COMP_.*")
        .allowlist_var("T_CONFIG_.*")
        .allowlist_var("TYPE_.*")
        // Enums stay plain integer constants: lighttpd may hand us values a
        // Rust enum would not allow (undefined behaviour).
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bindgen failed on lighttpd-headers/wrapper.h: {e}"
            ))
        });
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");
}

fn compile_shim(headers_dir: &Path, include_dirs: &[PathBuf], src: &Path) {
    let mut build = cc::Build::new();
    build
        .file(headers_dir.join("shim.c"))
        .define("HAVE_CONFIG_H", None);
    // Where a connection keeps its HTTP/2 streams: `hxcon *hx` (declared in
    // request.h) since lighttpd 1.4.7x, `h2con *h2` (declared in h2.h,
    // which needs ls-hpack) before. Told by the headers themselves, so a
    // release between the ones tested is read as it is.
    let base_h = src.join("base.h");
    let base = fs::read_to_string(&base_h)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", base_h.display()));
    if base.contains("hxcon *hx;") {
        build.define("BWC_HAVE_HXCON", None);
    }
    for d in include_dirs {
        build.include(d);
    }
    build.warnings(true).compile("bwcshim");
}

/// The plugin version id for `plugin.version`, and a warning when the
/// headers are not the installed lighttpd's. (No version cfgs: bindgen and
/// the shim follow the headers, and no code depends on the release yet.)
fn emit_version(out_dir: &Path, version: &str, version_id: u32, config_h: &str) {
    // What the layouts bindgen saw depend on beyond the release, recorded
    // for the check at load (src/lighttpd/build_check.rs).
    let defined = |name: &str| {
        config_h.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("#define") && words.next() == Some(name)
        })
    };
    write_if_changed(
        &out_dir.join("lighttpd_version.rs"),
        &format!(
            "/// What lighttpd compares with `plugin.version` before loading us\n\
             /// (lighttpd {version}).\n\
             pub const LIGHTTPD_VERSION_ID: usize = {version_id:#x};\n\
             /// The lighttpd release of the headers (for the status URL).\n\
             pub const LIGHTTPD_VERSION: &str = \"{version}\";\n\
             /// Whether the config.h of the bindings defined HAVE_PCRE2_H.\n\
             pub const BUILT_WITH_PCRE2: bool = {};\n\
             /// Whether it defined HAVE_PCRE_H (PCRE 1, before 1.4.68).\n\
             pub const BUILT_WITH_PCRE: bool = {};\n",
            defined("HAVE_PCRE2_H"),
            defined("HAVE_PCRE_H"),
        ),
    );
    if let Some(installed) = installed_lighttpd_version() {
        if installed != version {
            println!(
                "cargo:warning=mod_bw_counter: the installed lighttpd is {installed}, but these headers are {version}: \
                 that lighttpd will refuse this module (run {FETCH_HINT} or set LIGHTTPD_SRC)"
            );
        }
    }
}

/// `lighttpd -v` of the machine, if any: only for a helpful warning.
fn installed_lighttpd_version() -> Option<String> {
    let out = std::process::Command::new("lighttpd")
        .arg("-v")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.strip_prefix("lighttpd/")?.split_whitespace().next()?;
    Some(v.to_string())
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: mod_bw_counter build: {msg}\n");
    panic!("mod_bw_counter build: {msg}");
}
