// The dashboard's plotly.js: core (which carries scatter) and the trace types sweeper's figures use.
// sweeper/dashboard/plotly_bundle.py lists the same types as BUNDLED_TRACES; tests/test_plotly_bundle.py
// checks that every dashboard figure uses only those.
'use strict';

var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/scattergl'),
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/heatmap'),
    require('plotly.js/lib/contour'),
    require('plotly.js/lib/parcoords'),
]);

module.exports = Plotly;
