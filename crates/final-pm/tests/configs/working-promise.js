// The same configuration as working.json, as a promise.
module.exports = Promise.resolve({
    applications: [{
        name: 'app',
        'ready-on': 'message',
        'stop-signal': 'message',
        run: './../apps/sample-app.js',
    }, {
        name: 'app-listen',
        'ready-on': 'listen',
        'stop-signal': 'message',
        run: './../apps/sample-app.js',
    }, {
        name: 'neverStarts',
        'ready-on': 'message',
        'max-instances': 2,
        'start-timeout': 3000,
        run: './../apps/never-starting-app.js',
    }, {
        name: 'zombie',
        'ready-on': 'message',
        'kill-signal': 'SIGTERM',
        'start-timeout': 500,
        run: './../apps/zombie.js',
    }],
});
