//! Tracing: pretty or JSON lines on stdout, filtered by `log.level` (or RUST_LOG). In JSON mode
//! every line is one JSON object, panics included, and carries the request's span (its id).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::settings::LogFormat;

pub fn init(format: LogFormat, level: &str, to_stderr: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},actix_server=warn,h2=warn,hyper=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
        if to_stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) }
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_span_events(FmtSpan::NONE).with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(panic = %info, "panic");
        }));
    }
}
