// Shows what a config script sees: the config environment, and `this` of
// an exported function (frozen, without prototype).
module.exports = function () {
    return {
        applications: [{
            name: 'envapp',
            'ready-on': 'message',
            env: {
                SEEN_NPM: String(process.env.npm_package_config_test),
                SEEN_MARKER: String(process.env.FINAL_PM_TEST_MARKER),
                THIS_FROZEN: Object.isFrozen(this) && Object.getPrototypeOf(this) === null,
            },
        }],
    };
};
