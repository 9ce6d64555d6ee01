// Build the partial plotly.js bundle with the same esbuild settings as plotly.js's own dist build
// (node_modules/plotly.js/esbuild-config.js), minified, into sweeper/dashboard/vendor/.
'use strict';

const path = require('path');
const fs = require('fs');
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const version = require('plotly.js/package.json').version;
const outfile = path.join(__dirname, '..', '..', 'sweeper', 'dashboard', 'vendor', 'plotly-sweeper.min.js');

esbuild.build({
    entryPoints: [path.join(__dirname, 'entry.js')],
    outfile,
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    banner: { js: `/* plotly.js v${version} (MIT, Copyright Plotly, Inc.; see PLOTLY_LICENSE), partial bundle: core, scattergl, bar, heatmap, contour, parcoords. Built by dashboards/plotly_bundle/build.js. */` },
    plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2016',
    logLevel: 'info',
}).then(() => {
    fs.copyFileSync(require.resolve('plotly.js/LICENSE'), path.join(path.dirname(outfile), 'PLOTLY_LICENSE'));
}).catch(() => process.exit(1));
