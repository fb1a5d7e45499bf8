# Setup snippet for the audit package tests (sourced or run by the test setup).
# Headless Chromium renders the HTML report for the screenshot test;
# fonts-dejavu-core gives it a predictable sans-serif font.
if ! command -v chromium >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi
