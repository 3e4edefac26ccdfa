// Exits with an error status without reporting anything.
module.exports = function () {
    process.exit(1);
};
