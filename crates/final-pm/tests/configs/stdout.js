// A second configuration with the default socket, and console output that
// must not disturb the result.
console.log('config scripts may print');
module.exports = {
    applications: [{
        name: 'stdout',
        'ready-on': 'instant',
        run: './../apps/stdout.js',
    }, {
        name: 'app',
        'ready-on': 'instant',
        run: './../apps/other-app.js',
    }],
};
