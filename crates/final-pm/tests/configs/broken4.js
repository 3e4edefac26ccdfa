// The exported async function fails.
module.exports = async function () {
    throw new Error('$$$ERROR$$$');
};
