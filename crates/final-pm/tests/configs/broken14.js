// Exits successfully without producing a configuration.
module.exports = function () {
    process.exit(0);
};
